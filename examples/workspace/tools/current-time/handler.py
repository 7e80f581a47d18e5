from datetime import datetime
from zoneinfo import ZoneInfo


def handle(arguments, context):
    zone = ZoneInfo(arguments.get("timezone") or "UTC")
    return {"timezone": str(zone), "now": datetime.now(zone).isoformat(timespec="seconds")}

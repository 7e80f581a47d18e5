# Runs one call of a workspace tool's handler.py for agents-gateway.
#
# Reads {"arguments": {...}, "context": {...}} on stdin and writes exactly one JSON document,
# {"ok": true, "result": ...} or {"ok": false, "error": "..."}, on the original stdout. Anything the
# handler prints goes to stderr so it cannot corrupt the answer.
import asyncio
import importlib.util
import inspect
import json
import os
import sys
import traceback


class ToolContext(dict):
    """The call context: readable as context.agent_id and as context["agent_id"]."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as missing:
            raise AttributeError(name) from missing


def resolve(value):
    if inspect.isawaitable(value):

        async def wait():
            return await value

        return asyncio.run(wait())
    return value


def call_handler(module, arguments, context):
    handle = getattr(module, "handle", None)
    if callable(handle):
        return resolve(handle(arguments, context))
    handler = getattr(module, "handler", None)
    if not callable(handler):
        raise LookupError("handler.py defines neither handle(arguments, context) nor handler(**arguments)")
    parameters = inspect.signature(handler).parameters
    takes_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    kwargs = arguments if takes_any else {k: v for k, v in arguments.items() if k in parameters}
    if "context" in parameters and "context" not in kwargs:
        kwargs = dict(kwargs, context=context)
    return resolve(handler(**kwargs))


def main():
    answer = sys.stdout
    sys.stdout = sys.stderr
    path = sys.argv[1]
    try:
        request = json.load(sys.stdin)
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        spec = importlib.util.spec_from_file_location("agents_gateway_tool_handler", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        result = call_handler(module, request.get("arguments") or {}, ToolContext(request.get("context") or {}))
        answer.write(json.dumps({"ok": True, "result": result}, default=str))
    except BaseException as error:  # report everything, even SystemExit, as a failed call
        traceback.print_exc()
        answer.write(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))
    answer.flush()


main()

//! An incremental server-sent-events parser: bytes in (split anywhere), events out.

/// One event: its name (`event:` line) and its data (`data:` lines joined by `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Collects bytes until complete lines, and lines until a blank line ends an event.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    has_data: bool,
    /// Bytes of the event in progress: its lines read so far (a stream's bytes are the
    /// provider's, so a reader bounds them with [`SseParser::with_limit`]).
    event_bytes: usize,
    limit: Option<usize>,
    exceeded: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that stops at an event longer than `max_event_bytes` (its lines, a line not
    /// yet ended included): [`SseParser::exceeded`] then says so and nothing more is read.
    /// The same events come out before it however the input is split.
    pub fn with_limit(max_event_bytes: usize) -> Self {
        Self {
            limit: Some(max_event_bytes),
            ..Self::default()
        }
    }

    /// Whether an event went past the limit (see [`SseParser::with_limit`]).
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    fn over_limit(&self, bytes: usize) -> bool {
        self.limit.is_some_and(|max| bytes > max)
    }

    /// Feeds a chunk and returns the events it completed. Linear in the chunk: the bytes
    /// already pending were searched for a line end before, and the lines taken are removed
    /// at once (a line that never ends, arriving in small chunks, once cost a scan of all of
    /// it per chunk).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if self.exceeded {
            return events;
        }
        let mut search_from = self.pending.len();
        self.pending.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(offset) = self.pending[search_from..].iter().position(|b| *b == b'\n') {
            let end = search_from + offset;
            self.event_bytes += end + 1 - start;
            if self.over_limit(self.event_bytes) {
                self.exceeded = true;
                break;
            }
            let mut line = &self.pending[start..end];
            if let Some(without_cr) = line.strip_suffix(b"\r") {
                line = without_cr;
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            search_from = start;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        if self.exceeded || self.over_limit(self.event_bytes + self.pending.len() - start) {
            self.exceeded = true;
            self.pending = Vec::new();
            self.data = Vec::new();
        } else {
            self.pending.drain(..start);
        }
        events
    }

    /// Ends the input: an event not closed by a blank line is still delivered (not after the
    /// limit was exceeded).
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.exceeded {
            return None;
        }
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            let line = String::from_utf8_lossy(&rest)
                .trim_end_matches('\r')
                .to_string();
            if let Some(event) = self.line(&line) {
                return Some(event);
            }
        }
        self.dispatch()
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                self.data.push(value.to_string());
                self.has_data = true;
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        self.event_bytes = 0;
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data).join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_anywhere() {
        let text = "event: a\r\ndata: {\"x\":\ndata: 1}\r\n\r\n: comment\n\ndata: é\n\ndata: tail";
        let bytes = text.as_bytes();
        // Feed one byte at a time, including the middle of the two-byte 'é'.
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for b in bytes {
            events.extend(parser.push(&[*b]));
        }
        events.extend(parser.finish());
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: Some("a".into()),
                    data: "{\"x\":\n1}".into()
                },
                SseEvent {
                    event: None,
                    data: "é".into()
                },
                SseEvent {
                    event: None,
                    data: "tail".into()
                },
            ]
        );
    }

    #[test]
    fn an_event_past_the_limit_stops_the_parser_however_the_input_is_split() {
        let text =
            "data: short\n\n: a comment of thirty-odd bytes\ndata: 0123456789\n\ndata: x\n\n";
        let mut whole = SseParser::with_limit(40);
        let events = whole.push(text.as_bytes());
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(whole.exceeded());
        assert_eq!(whole.finish(), None);
        let mut split = SseParser::with_limit(40);
        let events: Vec<SseEvent> = text
            .as_bytes()
            .iter()
            .flat_map(|b| split.push(&[*b]))
            .collect();
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(split.exceeded());
        // A blank line ends an event's count: many small events are fine.
        let mut many = SseParser::with_limit(40);
        assert_eq!(
            many.push("data: 0123456789\n\n".repeat(100).as_bytes())
                .len(),
            100
        );
        assert!(!many.exceeded());
    }

    #[test]
    fn field_without_space_and_unknown_fields() {
        let mut parser = SseParser::new();
        let events = parser.push(b"id: 7\nretry: 10\ndata:x\n\n");
        assert_eq!(
            events,
            vec![SseEvent {
                event: None,
                data: "x".into()
            }]
        );
    }
}

//! Text as the runner handles it wherever it comes from: made printable on one line, and split
//! into lines as a stream comes. A leaf: used by the lab (program output), the console and the
//! records alike.

/// Text from the guest or a program made safe to print as one line: control characters
/// (newlines, carriage returns, escape sequences, backspaces) and the Unicode controls that
/// reorder or hide text are shown escaped (`\n`, `\x1b`, `\u{202e}`), so what they print can
/// never move the cursor, erase a line or start a line that passes for the runner's own.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    };
    if !text.chars().any(|c| hidden(c) && c != '\t') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x100 && hidden(c) => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.into()
}

/// Splits a byte stream into lines as it comes; a line longer than `max` is passed on in pieces
/// of `max`, so nothing is held without bound.
pub struct LineSplitter {
    pending: Vec<u8>,
    max: usize,
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            pending: Vec::new(),
            max,
        }
    }

    /// Add bytes; `emit` gets each whole line (with its newline).
    pub fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(&[u8])) {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = self.pending[start..].iter().position(|&b| b == b'\n') {
            emit(&self.pending[start..=start + pos]);
            start += pos + 1;
        }
        self.pending.drain(..start);
        while self.pending.len() > self.max {
            let rest = self.pending.split_off(self.max);
            emit(&self.pending);
            self.pending = rest;
        }
    }

    /// The end of the stream: pass on what is left.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped_on_one_line() {
        assert_eq!(
            printable("plain text\twith a tab"),
            "plain text\twith a tab"
        );
        assert_eq!(
            printable("a\n   + netns delete x\r\x1b[2K\u{202e}"),
            r"a\n   + netns delete x\r\x1b[2K\u{202e}"
        );
        assert_eq!(printable("\u{85}\x7f\u{2066}"), r"\x85\x7f\u{2066}");
    }

    #[test]
    fn lines_are_split_as_they_come_and_long_ones_in_pieces() {
        let mut got: Vec<String> = Vec::new();
        let mut s = LineSplitter::new(4);
        let mut emit = |l: &[u8]| got.push(String::from_utf8_lossy(l).into_owned());
        s.push(b"ab\ncd", &mut emit);
        s.push(b"\nefghij", &mut emit);
        s.finish(&mut emit);
        assert_eq!(got, ["ab\n", "cd\n", "efgh", "ij"]);
    }
}

//! Source files and byte spans. A `Span` is a byte range in one file; line and column are derived
//! on demand from a per-file line index, so spans stay small (12 bytes) and cheap to copy.

use std::sync::Arc;

/// Identifies one source file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(u32);

impl FileId {
    /// The raw index, for serialisation and sorting only.
    pub fn index(self) -> u32 {
        self.0
    }
}

/// A byte range `[start, end)` in one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// A span of `len` bytes from `start`.
    pub fn new(file: FileId, start: u32, end: u32) -> Self {
        Self {
            file,
            start,
            end: end.max(start),
        }
    }

    /// The empty span at the start of a file, for findings that have no better place.
    pub fn file_start(file: FileId) -> Self {
        Self {
            file,
            start: 0,
            end: 0,
        }
    }
}

/// A 1-based line and column; the column counts characters, as editors do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineCol {
    pub line: u32,
    pub column: u32,
}

/// One input: a path (or `<stdin>`) and its text. Cheap to clone: the text and the line index
/// are shared.
#[derive(Clone, Debug)]
pub struct SourceFile {
    name: String,
    text: Arc<str>,
    line_starts: Arc<[u32]>,
    not_utf8: Option<u32>,
}

impl SourceFile {
    fn new(name: String, text: Arc<str>) -> Self {
        let line_starts = std::iter::once(0)
            .chain(
                text.bytes()
                    .enumerate()
                    .filter(|(_, b)| *b == b'\n')
                    .map(|(i, _)| i as u32 + 1),
            )
            .collect();
        SourceFile {
            name,
            text,
            line_starts,
            not_utf8: None,
        }
    }

    /// The name shown in diagnostics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The byte offset of the first byte that is not UTF-8, for a file added by
    /// [`SourceMap::add_bytes`] whose bytes are not all text. Such a file's text has U+FFFD in
    /// place of each bad sequence; offsets up to this one are the file's own.
    pub fn not_utf8(&self) -> Option<u32> {
        self.not_utf8
    }

    /// The line and column of a byte offset (clamped into the file).
    pub fn line_col(&self, offset: u32) -> LineCol {
        let offset = offset.min(self.text.len() as u32);
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line] as usize;
        let end = floor_char_boundary(&self.text, offset as usize);
        let column = self.text[start..end.max(start)].chars().count() as u32 + 1;
        LineCol {
            line: line as u32 + 1,
            column,
        }
    }

    /// The byte offset of a 1-based line and character column, clamped into the file.
    pub fn offset_of(&self, line: u32, column: u32) -> u32 {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1) as usize) else {
            return self.text.len() as u32;
        };
        let rest = &self.text[start as usize..];
        let within: usize = rest
            .char_indices()
            .take_while(|(_, c)| *c != '\n')
            .nth(column.saturating_sub(1) as usize)
            .map_or_else(|| rest.find('\n').unwrap_or(rest.len()), |(i, _)| i);
        start + within as u32
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// All inputs of one compilation.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file and returns its id.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<Arc<str>>) -> FileId {
        let id = FileId(self.files.len() as u32);
        self.files.push(SourceFile::new(name.into(), text.into()));
        id
    }

    /// Puts another file under an existing id, for a caller that keeps its sources between
    /// compilations and re-reads only what changed (the controller): spans into the old file
    /// must be gone with it.
    pub fn replace(&mut self, id: FileId, name: impl Into<String>, text: impl Into<Arc<str>>) {
        self.files[id.0 as usize] = SourceFile::new(name.into(), text.into());
    }

    /// Adds a file as read from disk or a pipe. Bytes that are not UTF-8 do not stop the
    /// compilation: the file is kept (shown with U+FFFD in their place) and marked, so that the
    /// loader reports the first bad byte with its line and column.
    pub fn add_bytes(&mut self, name: impl Into<String>, bytes: Vec<u8>) -> FileId {
        match String::from_utf8(bytes) {
            Ok(text) => self.add(name, text),
            Err(error) => {
                let at = error.utf8_error().valid_up_to() as u32;
                let text = String::from_utf8_lossy(error.as_bytes()).into_owned();
                let id = self.add(name, text);
                self.files[id.0 as usize].not_utf8 = Some(at);
                id
            }
        }
    }

    /// The file behind an id.
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// Every file with its id, in the order added.
    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    /// The line and column where a span starts.
    pub fn line_col(&self, span: Span) -> LineCol {
        self.file(span.file).line_col(span.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_from_one() {
        let mut map = SourceMap::new();
        let id = map.add("a.yaml", "a: 1\nbé: 2\n");
        let file = map.file(id);
        assert_eq!(file.line_col(0), LineCol { line: 1, column: 1 });
        assert_eq!(file.line_col(5), LineCol { line: 2, column: 1 });
        // `é` is two bytes; the colon after it is the third character.
        assert_eq!(file.line_col(8), LineCol { line: 2, column: 3 });
        assert_eq!(file.offset_of(2, 3), 8);
        assert_eq!(file.offset_of(9, 1), file.text().len() as u32);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_marked_at_the_first_bad_one() {
        let mut map = SourceMap::new();
        let good = map.add_bytes("good.yaml", b"a: 1\n".to_vec());
        let bad = map.add_bytes("bad.yaml", b"a: 1\nname: caf\xe9 \xff\n".to_vec());
        assert_eq!(map.file(good).not_utf8(), None);
        let file = map.file(bad);
        assert_eq!(file.not_utf8(), Some(14));
        assert_eq!(
            file.line_col(14),
            LineCol {
                line: 2,
                column: 10
            }
        );
        assert_eq!(file.text(), "a: 1\nname: caf\u{fffd} \u{fffd}\n");
    }

    #[test]
    fn a_replaced_file_keeps_its_id_and_indexes_its_new_text() {
        let mut map = SourceMap::new();
        let a = map.add("a.yaml", "a: 1\n");
        let b = map.add("b.yaml", "b: 1\n");
        map.replace(a, "c.yaml", "x: 1\ny: 2\n");
        assert_eq!(map.file(a).name(), "c.yaml");
        assert_eq!(map.file(a).line_col(5), LineCol { line: 2, column: 1 });
        assert_eq!(map.file(b).name(), "b.yaml");
        assert_eq!(map.files().count(), 2);
    }
}

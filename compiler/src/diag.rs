//! Diagnostics as data. The library never prints: it returns [`Diagnostic`]s,
//! and [`render`] turns them into text (with or without colour) for the CLI and
//! for snapshot tests.

use crate::syntax::ast::Span;
use codespan_reporting::diagnostic::{Diagnostic as CsDiag, Label};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, termcolor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// The first label is the primary one.
    pub labels: Vec<(Span, String)>,
    pub notes: Vec<String>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            labels: vec![(span, label.into())],
            notes: vec![],
            hint: None,
        }
    }
    /// An error that is not tied to source text (e.g. a missing file).
    pub fn global(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            labels: vec![],
            notes: vec![],
            hint: None,
        }
    }
    pub fn warning(message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message, span, label)
        }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
    pub fn with_label(mut self, span: Span, label: impl Into<String>) -> Self {
        self.labels.push((span, label.into()));
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The source files a compilation read; `Span::file` indexes `files`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub files: Vec<(String, String)>,
}

impl Sources {
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> u32 {
        self.files.push((name.into(), text.into()));
        (self.files.len() - 1) as u32
    }
    pub fn name(&self, file: u32) -> &str {
        self.files
            .get(file as usize)
            .map(|f| f.0.as_str())
            .unwrap_or("<unknown>")
    }
    pub fn text(&self, file: u32) -> &str {
        self.files
            .get(file as usize)
            .map(|f| f.1.as_str())
            .unwrap_or("")
    }
    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, file: u32, offset: u32) -> (u32, u32) {
        let text = self.text(file);
        let off = (offset as usize).min(text.len());
        let before = &text[..off];
        let line = before.matches('\n').count() as u32 + 1;
        let col = before
            .rsplit('\n')
            .next()
            .map(|s| s.chars().count())
            .unwrap_or(0) as u32
            + 1;
        (line, col)
    }
    /// The span of an IR location (line/column back to byte offsets).
    pub fn span_of(&self, loc: crate::ir::Loc) -> Span {
        let text = self.text(loc.file);
        let mut off = 0usize;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            if i + 1 == loc.line as usize {
                let col: usize = line
                    .chars()
                    .take(loc.col.saturating_sub(1) as usize)
                    .map(char::len_utf8)
                    .sum();
                off += col;
                break;
            }
            off += line.len();
        }
        let start = off.min(text.len());
        Span::new(loc.file, start, (start + loc.len as usize).min(text.len()))
    }

    /// `file:line:col` of a span's start.
    pub fn location(&self, span: Span) -> String {
        let (l, c) = self.line_col(span.file, span.start);
        format!("{}:{}:{}", self.name(span.file), l, c)
    }
}

/// Renders diagnostics as codespan-reporting text. `color` adds ANSI colours.
pub fn render(sources: &Sources, diags: &[Diagnostic], color: bool) -> String {
    let mut files = SimpleFiles::new();
    for (name, text) in &sources.files {
        files.add(name.clone(), text.clone());
    }
    let mut buf = if color {
        termcolor::Buffer::ansi()
    } else {
        termcolor::Buffer::no_color()
    };
    let config = term::Config::default();
    for d in diags {
        let mut cs = match d.severity {
            Severity::Error => CsDiag::error(),
            Severity::Warning => CsDiag::warning(),
        }
        .with_message(&d.message);
        let labels = d
            .labels
            .iter()
            .enumerate()
            .filter(|(_, (s, _))| (s.file as usize) < sources.files.len())
            .map(|(i, (s, msg))| {
                let text_len = sources.text(s.file).len();
                let range = (s.start as usize).min(text_len)..(s.end as usize).min(text_len);
                let l = if i == 0 {
                    Label::primary(s.file as usize, range)
                } else {
                    Label::secondary(s.file as usize, range)
                };
                l.with_message(msg.clone())
            })
            .collect();
        cs = cs.with_labels(labels);
        let mut notes = d.notes.clone();
        if let Some(h) = &d.hint {
            notes.push(format!("hint: {h}"));
        }
        cs = cs.with_notes(notes);
        // Rendering into a memory buffer cannot fail for in-range labels.
        let _ = term::emit(&mut buf, &config, &files, &cs);
    }
    String::from_utf8_lossy(buf.as_slice()).into_owned()
}

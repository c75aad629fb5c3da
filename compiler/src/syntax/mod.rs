//! The DSL front end: lexer ([`lexer`]), lalrpop grammar, AST ([`ast`]) and
//! [`parse`], which turns parse failures into diagnostics.

pub mod ast;
pub mod lexer;

#[allow(clippy::all, unused_parens)]
mod grammar {
    include!(concat!(env!("OUT_DIR"), "/syntax/grammar.rs"));
}

use crate::diag::Diagnostic;
use ast::{File, Span};
use lalrpop_util::ParseError;
use lexer::{LexError, Tok};

/// Parses one source file. On failure returns every diagnostic found: the parser
/// stops at the first syntax error, but lexing errors before it are all reported.
pub fn parse(file: u32, src: &str) -> Result<File, Vec<Diagnostic>> {
    let mut lex_errors = Vec::new();
    let tokens: Vec<_> = lexer::lex(src)
        .filter_map(|t| match t {
            Ok(t) => Some(Ok(t)),
            Err(e) => {
                lex_errors.push(lex_diag(file, &e));
                None
            }
        })
        .collect();
    if !lex_errors.is_empty() {
        return Err(lex_errors);
    }
    check_nesting(file, &tokens)?;
    grammar::FileParser::new()
        .parse(file, tokens)
        .map_err(|e| vec![parse_diag(file, src, e)])
}

/// Deepest bracket nesting and longest operator chain accepted. The parser,
/// elaborator and AST are recursive; these limits keep any input from
/// exhausting the stack while staying far above what a model needs.
pub const MAX_NESTING: usize = 128;
pub const MAX_CHAIN: usize = 2000;

fn check_nesting(
    file: u32,
    tokens: &[Result<(usize, Tok, usize), LexError>],
) -> Result<(), Vec<Diagnostic>> {
    let mut depth = 0usize;
    let mut chain = 0usize;
    for (l, t, r) in tokens.iter().flatten() {
        match t {
            Tok::LParen | Tok::LBracket | Tok::LBrace => depth += 1,
            Tok::RParen | Tok::RBracket | Tok::RBrace => depth = depth.saturating_sub(1),
            _ => {}
        }
        match t {
            Tok::Semi | Tok::LBrace | Tok::RBrace => chain = 0,
            Tok::Plus
            | Tok::Minus
            | Tok::Star
            | Tok::Slash
            | Tok::Percent
            | Tok::At
            | Tok::As
            | Tok::Bang => chain += 1,
            Tok::Lt | Tok::Gt | Tok::Le | Tok::Ge | Tok::EqEq | Tok::Ne => chain += 1,
            _ => {}
        }
        if depth > MAX_NESTING || chain > MAX_CHAIN {
            let what = if depth > MAX_NESTING {
                format!("brackets nest deeper than {MAX_NESTING} levels")
            } else {
                format!("an expression chains more than {MAX_CHAIN} operators")
            };
            return Err(vec![Diagnostic::error(
                what,
                Span::new(file, *l, *r),
                "here",
            )
            .with_hint("split the expression with `let` bindings")]);
        }
    }
    Ok(())
}

fn lex_diag(file: u32, e: &LexError) -> Diagnostic {
    let mut d = Diagnostic::error(
        format!("unexpected character `{}`", e.text.escape_debug()),
        Span::new(file, e.start, e.end),
        "not part of any token",
    );
    if e.text.starts_with('"') {
        d = d.with_hint("strings end on the same line and allow only \\n \\t \\\\ \\\" escapes");
    } else if e.text.chars().all(|c| c.is_ascii_digit()) {
        d = d.with_hint("integer literals must fit in 64 bits");
    }
    d
}

fn describe_expected(expected: &[String]) -> String {
    let names: Vec<String> = expected
        .iter()
        .map(|s| match s.as_str() {
            "IdentTok" => "identifier".to_string(),
            "IntTok" => "integer".to_string(),
            "FloatTok" => "number".to_string(),
            "StrTok" => "string".to_string(),
            other => other.replace('"', "`"),
        })
        .collect();
    match names.len() {
        0 => String::new(),
        1 => format!("expected {}", names[0]),
        n if n <= 6 => format!("expected one of {}", names.join(", ")),
        _ => format!("expected one of {}, ...", names[..6].join(", ")),
    }
}

fn parse_diag(file: u32, src: &str, e: ParseError<usize, Tok, LexError>) -> Diagnostic {
    match e {
        ParseError::InvalidToken { location } => Diagnostic::error(
            "invalid token",
            Span::new(file, location, location + 1),
            "here",
        ),
        ParseError::UnrecognizedEof { location, expected } => Diagnostic::error(
            "unexpected end of file",
            Span::new(file, location.min(src.len()), src.len()),
            describe_expected(&expected),
        )
        .with_hint("a `{`, `(` or `[` may be missing its closing partner"),
        ParseError::UnrecognizedToken {
            token: (l, tok, r),
            expected,
        } => {
            let mut d = Diagnostic::error(
                format!("unexpected {tok}"),
                Span::new(file, l, r),
                describe_expected(&expected),
            );
            let starts_item = matches!(
                tok,
                Tok::Fn | Tok::Model | Tok::Config | Tok::Format | Tok::Use
            );
            if starts_item && expected.iter().any(|x| x == "\"}\"") {
                d = d.with_hint("a `{` before this is not closed: add the missing `}`");
            } else if expected.iter().any(|x| x == "\";\"") {
                d = d.with_hint("statements end with `;`");
            } else if matches!(tok, Tok::Eq) && expected.iter().any(|x| x == "\"==\"") {
                d = d.with_hint("use `==` to compare; `=` only binds names");
            }
            d
        }
        ParseError::ExtraToken { token: (l, tok, r) } => Diagnostic::error(
            format!("unexpected {tok} after the end of the file's items"),
            Span::new(file, l, r),
            "extra token",
        ),
        ParseError::User { error } => lex_diag(file, &error),
    }
}

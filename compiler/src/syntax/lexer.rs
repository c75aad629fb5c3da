//! The DSL lexer (logos). Produces `(start, Tok, end)` triples for the lalrpop
//! parser; byte offsets index into the file's source text.
//!
//! Invariant: every byte of the input is either skipped (whitespace, comments) or
//! part of exactly one token; an unrecognised byte becomes a `LexError` carrying its
//! span, never a panic.

use logos::Logos;
use std::fmt;

#[derive(Logos, Debug, Clone, PartialEq)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip r"//[^\n]*")]
#[logos(skip r"/\*([^*]|\*+[^*/])*\*+/")]
pub enum Tok {
    #[token("use")]
    Use,
    #[token("config")]
    Config,
    #[token("format")]
    Format,
    #[token("fn")]
    Fn,
    #[token("model")]
    Model,
    #[token("let")]
    Let,
    #[token("for")]
    For,
    #[token("in")]
    In,
    #[token("if")]
    If,
    #[token("else")]
    Else,
    #[token("input")]
    Input,
    #[token("weight")]
    Weight,
    #[token("output")]
    Output,
    #[token("from")]
    From,
    #[token("to")]
    To,
    #[token("precision")]
    Precision,
    #[token("as")]
    As,
    #[token("true")]
    True,
    #[token("false")]
    False,

    #[regex(r"[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice().to_string())]
    Ident(String),
    #[regex(r"[0-9]+", |lex| lex.slice().parse::<i64>().ok())]
    Int(i64),
    #[regex(r"[0-9]+\.[0-9]+([eE][+-]?[0-9]+)?", |lex| lex.slice().parse::<f64>().ok())]
    #[regex(r"[0-9]+[eE][+-]?[0-9]+", |lex| lex.slice().parse::<f64>().ok())]
    Float(f64),
    #[regex(r#""([^"\\\n]|\\.)*""#, |lex| unescape(lex.slice()))]
    Str(String),

    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(":")]
    Colon,
    #[token("->")]
    Arrow,
    #[token("=")]
    Eq,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
    #[token("@")]
    At,
    #[token("<")]
    Lt,
    #[token(">")]
    Gt,
    #[token("<=")]
    Le,
    #[token(">=")]
    Ge,
    #[token("==")]
    EqEq,
    #[token("!=")]
    Ne,
    #[token("..")]
    DotDot,
    #[token(".")]
    Dot,
    #[token("!")]
    Bang,
}

fn unescape(s: &str) -> Option<String> {
    let inner = &s[1..s.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "identifier `{s}`"),
            Tok::Int(i) => write!(f, "integer `{i}`"),
            Tok::Float(x) => write!(f, "number `{x}`"),
            Tok::Str(s) => write!(f, "string {s:?}"),
            other => write!(f, "`{}`", token_text(other)),
        }
    }
}

/// The source spelling of a fixed token (used in messages).
pub fn token_text(t: &Tok) -> &'static str {
    match t {
        Tok::Use => "use",
        Tok::Config => "config",
        Tok::Format => "format",
        Tok::Fn => "fn",
        Tok::Model => "model",
        Tok::Let => "let",
        Tok::For => "for",
        Tok::In => "in",
        Tok::If => "if",
        Tok::Else => "else",
        Tok::Input => "input",
        Tok::Weight => "weight",
        Tok::Output => "output",
        Tok::From => "from",
        Tok::To => "to",
        Tok::Precision => "precision",
        Tok::As => "as",
        Tok::True => "true",
        Tok::False => "false",
        Tok::LParen => "(",
        Tok::RParen => ")",
        Tok::LBracket => "[",
        Tok::RBracket => "]",
        Tok::LBrace => "{",
        Tok::RBrace => "}",
        Tok::Comma => ",",
        Tok::Semi => ";",
        Tok::Colon => ":",
        Tok::Arrow => "->",
        Tok::Eq => "=",
        Tok::Plus => "+",
        Tok::Minus => "-",
        Tok::Star => "*",
        Tok::Slash => "/",
        Tok::Percent => "%",
        Tok::At => "@",
        Tok::Lt => "<",
        Tok::Gt => ">",
        Tok::Le => "<=",
        Tok::Ge => ">=",
        Tok::EqEq => "==",
        Tok::Ne => "!=",
        Tok::DotDot => "..",
        Tok::Dot => ".",
        Tok::Bang => "!",
        Tok::Ident(_) | Tok::Int(_) | Tok::Float(_) | Tok::Str(_) => "literal",
    }
}

/// A lexing failure: the byte range of the offending text.
#[derive(Debug, Clone, PartialEq)]
pub struct LexError {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

pub type Spanned = Result<(usize, Tok, usize), LexError>;

/// Tokenises `src`; errors are yielded in-line so the parser can report them.
pub fn lex(src: &str) -> impl Iterator<Item = Spanned> + '_ {
    Tok::lexer(src).spanned().map(move |(res, r)| match res {
        Ok(t) => Ok((r.start, t, r.end)),
        Err(()) => Err(LexError {
            start: r.start,
            end: r.end,
            text: src[r.clone()].to_string(),
        }),
    })
}

//! The DSL's abstract syntax tree. Every node carries a [`Span`]; the tree is
//! serialisable so `ditto compile --emit ast` prints it as JSON.

use serde::Serialize;

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
pub struct Span {
    pub file: u32,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: u32, start: usize, end: usize) -> Span {
        Span {
            file,
            start: start as u32,
            end: end as u32,
        }
    }
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Item {
    /// `use std.transformer;`
    Use {
        path: Vec<Ident>,
        span: Span,
    },
    /// `config base { layers = 12, hidden = 768 }`
    Config {
        name: Ident,
        entries: Vec<(Ident, Expr)>,
        span: Span,
    },
    /// `format linear = (32, 8);`
    Format {
        name: Ident,
        ring: (i64, Span),
        frac: (i64, Span),
        span: Span,
    },
    Fn(FnDef),
    Model(ModelDef),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attr {
    pub name: Ident,
    pub args: Vec<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FnDef {
    pub attrs: Vec<Attr>,
    pub name: Ident,
    pub params: Vec<Param>,
    pub ret: Option<TypeExpr>,
    pub body: Block,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelDef {
    pub attrs: Vec<Attr>,
    pub name: Ident,
    /// Sizes supplied by the driver (e.g. `S`, the number of tokens).
    pub params: Vec<SizeParam>,
    pub body: Block,
    pub span: Span,
}

/// A model's size parameter, with the value it takes when the driver gives
/// none (a compile-time expression of the sizes before it and the config).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeParam {
    pub name: Ident,
    pub default: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    pub name: Ident,
    pub ty: Option<TypeExpr>,
}

/// `s32.8[S, D]`, `p64.18[D]`, `s[S, D]` (format from the enclosing precision),
/// `sbool[S, S]`. `base` is validated by the elaborator, not the parser.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeExpr {
    pub base: Ident,
    pub frac: Option<(i64, Span)>,
    pub dims: Option<Vec<Expr>>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub tail: Option<Box<Expr>>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Pattern {
    Name(Ident),
    Tuple(Vec<Ident>, Span),
}

/// A format written in source: a declared class name or a literal `(k, f)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum FormatRef {
    Class(Ident),
    Literal {
        ring: (i64, Span),
        frac: (i64, Span),
        span: Span,
    },
}

impl FormatRef {
    pub fn span(&self) -> Span {
        match self {
            FormatRef::Class(i) => i.span,
            FormatRef::Literal { span, .. } => *span,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Stmt {
    Let {
        attrs: Vec<Attr>,
        pat: Pattern,
        ty: Option<TypeExpr>,
        value: Expr,
        span: Span,
    },
    Assign {
        name: Ident,
        value: Expr,
        span: Span,
    },
    Input {
        attrs: Vec<Attr>,
        name: Ident,
        ty: TypeExpr,
        owner: Ident,
        span: Span,
    },
    Weight {
        attrs: Vec<Attr>,
        name: Ident,
        ty: TypeExpr,
        key: Expr,
        span: Span,
    },
    Output {
        name: Ident,
        value: Option<Expr>,
        /// `to parties`: kept by the parties as secret shares for the next
        /// run of a session (an input `from parties` of the same name)
        /// instead of revealed to the client.
        to: Option<Ident>,
        span: Span,
    },
    For {
        var: Ident,
        lo: Expr,
        hi: Expr,
        body: Block,
        span: Span,
    },
    If {
        cond: Expr,
        then: Block,
        els: Option<Block>,
        span: Span,
    },
    Precision {
        format: FormatRef,
        body: Block,
        span: Span,
    },
    Expr(Expr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    MatMul,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::MatMul => "@",
            BinOp::Lt => "<",
            BinOp::Gt => ">",
            BinOp::Le => "<=",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Arg {
    Pos(Expr),
    Named(Ident, Expr),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Var(String),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Unary(UnOp, Box<Expr>),
    Call(Ident, Vec<Arg>),
    Tuple(Vec<Expr>),
    List(Vec<Expr>),
    As(Box<Expr>, FormatRef),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

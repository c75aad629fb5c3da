//! The IR's canonical text format, printer and parser.
//!
//! Grammar (one item per line; `;` starts a comment):
//!
//! ```text
//! graph   := "graph" NAME NL file* node*
//! file    := "file" INT STRING
//! node    := "%" INT "=" OPNAME operands attr* ":" type meta*
//! operands:= ("%" INT ("," "%" INT)*)?
//! attr    := KEY "=" value | KEY              (a bare key is a flag)
//! value   := INT | FLOAT | STRING | IDENT | "[" INT ("," INT)* "]"
//! type    := ("s"|"p") (("32"|"64") "." INT | "bool") "[" dims "]"
//! meta    := "!name=" STRING | "!class=" IDENT | "!bound=" FLOAT | "!approx"
//!          | "!loc=" INT ":" INT ":" INT "+" INT
//! ```
//!
//! Nodes are numbered in the graph's deterministic topological order, so
//! printing is canonical: `print(parse(print(g))) == print(g)`, and
//! `parse(print(g))` is [`Graph::same_as`] `g`.

use super::graph::{Graph, Loc, Node, NodeId};
use super::ops::{fmt_f64, quote, AttrVal, Op};
use super::types::{Elem, Format, Type, Vis};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

pub fn print(g: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "graph {}", g.name);
    for (i, f) in g.files.iter().enumerate() {
        let _ = writeln!(out, "file {i} {}", quote(f));
    }
    let order = match g.topo_order() {
        Ok(o) => o,
        Err(_) => g.ids(), // a cyclic graph still prints (for debugging the verifier)
    };
    let num: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    for &id in &order {
        let n = g.node(id);
        let _ = write!(out, "%{} = {}", num[&id], n.op.name());
        let ops: Vec<String> = g
            .operands(id)
            .iter()
            .map(|o| match num.get(o) {
                Some(k) => format!("%{k}"),
                None => "%?".into(),
            })
            .collect();
        if !ops.is_empty() {
            let _ = write!(out, " {}", ops.join(", "));
        }
        for (k, v) in n.op.attrs() {
            match v {
                AttrVal::Flag => {
                    let _ = write!(out, " {k}");
                }
                v => {
                    let _ = write!(out, " {k}={v}");
                }
            }
        }
        let _ = write!(out, " : {}", n.ty);
        if let Some(name) = &n.name {
            let _ = write!(out, " !name={}", quote(name));
        }
        if let Some(c) = &n.class {
            let _ = write!(out, " !class={c}");
        }
        if let Some(b) = n.bound {
            let _ = write!(out, " !bound={}", fmt_f64(b));
        }
        if n.approx {
            let _ = write!(out, " !approx");
        }
        if let Some(l) = n.loc {
            let _ = write!(out, " !loc={}:{}:{}+{}", l.file, l.line, l.col, l.len);
        }
        out.push('\n');
    }
    out
}

/// A parse failure with its 1-based line number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct TextError {
    pub line: usize,
    pub message: String,
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while self.s[self.pos..].starts_with([' ', '\t']) {
            self.pos += 1;
        }
    }
    fn done(&mut self) -> bool {
        self.ws();
        self.pos >= self.s.len() || self.s[self.pos..].starts_with(';')
    }
    fn eat(&mut self, t: &str) -> bool {
        self.ws();
        if self.s[self.pos..].starts_with(t) {
            self.pos += t.len();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, t: &str) -> Result<(), String> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(format!("expected `{t}` at `{}`", self.rest()))
        }
    }
    /// Up to 20 characters of the remaining text, for messages.
    fn rest(&self) -> String {
        self.s[self.pos..].chars().take(20).collect()
    }
    fn word(&mut self) -> Result<&'a str, String> {
        self.ws();
        let start = self.pos;
        let bytes = self.s.as_bytes();
        while self.pos < bytes.len()
            && (bytes[self.pos].is_ascii_alphanumeric() || b"_-".contains(&bytes[self.pos]))
        {
            self.pos += 1;
        }
        if start == self.pos {
            Err(format!("expected a word at `{}`", self.rest()))
        } else {
            Ok(&self.s[start..self.pos])
        }
    }
    fn number(&mut self) -> Result<&'a str, String> {
        self.ws();
        let start = self.pos;
        let bytes = self.s.as_bytes();
        while self.pos < bytes.len()
            && (bytes[self.pos].is_ascii_alphanumeric() || b"+-.".contains(&bytes[self.pos]))
        {
            // stop a "+" that is not part of an exponent (as in loc=..+len)
            if bytes[self.pos] == b'+' && self.pos > start && !b"eE".contains(&bytes[self.pos - 1])
            {
                break;
            }
            self.pos += 1;
        }
        if start == self.pos {
            Err(format!("expected a number at `{}`", self.rest()))
        } else {
            Ok(&self.s[start..self.pos])
        }
    }
    fn uint(&mut self) -> Result<usize, String> {
        let w = self.number()?;
        w.parse()
            .map_err(|_| format!("expected an unsigned integer, got `{w}`"))
    }
    fn string(&mut self) -> Result<String, String> {
        self.ws();
        if !self.s[self.pos..].starts_with('"') {
            return Err(format!("expected a string at `{}`", self.rest()));
        }
        let mut out = String::new();
        let mut chars = self.s[self.pos + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 2;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, '"')) => out.push('"'),
                    Some((_, 'u')) => {
                        let rest: String = chars
                            .by_ref()
                            .map(|(_, c)| c)
                            .take_while(|&c| c != '}')
                            .collect();
                        let code = rest
                            .strip_prefix('{')
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("bad escape `\\u{rest}}}`"))?;
                        out.push(code);
                    }
                    Some((_, c)) => return Err(format!("unknown escape `\\{c}`")),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err("unterminated string".into())
    }
    fn value(&mut self) -> Result<AttrVal, String> {
        self.ws();
        let r = &self.s[self.pos..];
        if r.starts_with('"') {
            return Ok(AttrVal::Str(self.string()?));
        }
        if self.eat("[") {
            let mut v = vec![];
            if !self.eat("]") {
                loop {
                    let w = self.number()?;
                    v.push(w.parse().map_err(|_| format!("bad list item `{w}`"))?);
                    if self.eat("]") {
                        break;
                    }
                    self.expect(",")?;
                }
            }
            return Ok(AttrVal::List(v));
        }
        if r.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            let w = self.number()?;
            if let Ok(i) = w.parse::<i64>() {
                return Ok(AttrVal::Int(i));
            }
            return w
                .parse::<f64>()
                .map(AttrVal::Float)
                .map_err(|_| format!("bad number `{w}`"));
        }
        match self.word()? {
            "inf" => Ok(AttrVal::Float(f64::INFINITY)),
            "NaN" => Ok(AttrVal::Float(f64::NAN)),
            w => Ok(AttrVal::Ident(w.to_string())),
        }
    }
    fn dims(&mut self) -> Result<Vec<usize>, String> {
        self.expect("[")?;
        let mut v = vec![];
        if !self.eat("]") {
            loop {
                v.push(self.uint()?);
                if self.eat("]") {
                    break;
                }
                if !self.eat(",") {
                    return Err(format!(
                        "expected `,` or `]` in a shape at `{}`",
                        self.rest()
                    ));
                }
            }
        }
        Ok(v)
    }
}

fn parse_type(c: &mut Cursor) -> Result<Type, String> {
    c.ws();
    let vis = if c.eat("s") {
        Vis::Secret
    } else if c.eat("p") {
        Vis::Public
    } else {
        return Err(format!("expected a type at `{}`", c.rest()));
    };
    if c.eat("bool") {
        return Ok(Type {
            vis,
            elem: Elem::Bool,
            shape: c.dims()?,
        });
    }
    let start = c.pos;
    while c.pos < c.s.len() && c.s.as_bytes()[c.pos].is_ascii_digit() {
        c.pos += 1;
    }
    let k: i64 = c.s[start..c.pos]
        .parse()
        .map_err(|_| "expected ring bits".to_string())?;
    c.expect(".")?;
    let start = c.pos;
    while c.pos < c.s.len() && c.s.as_bytes()[c.pos].is_ascii_digit() {
        c.pos += 1;
    }
    let f: i64 = c.s[start..c.pos]
        .parse()
        .map_err(|_| "expected fraction bits".to_string())?;
    let fm = Format::new(k, f)?;
    Ok(Type {
        vis,
        elem: Elem::Fixed(fm),
        shape: c.dims()?,
    })
}

/// Parses the text format. Operands must refer to earlier nodes.
pub fn parse(text: &str) -> Result<Graph, TextError> {
    let mut g = Graph::new("");
    let mut have_header = false;
    let mut ids: HashMap<usize, NodeId> = HashMap::new();
    for (lineno, line) in text.lines().enumerate() {
        let err = |message: String| TextError {
            line: lineno + 1,
            message,
        };
        let mut c = Cursor { s: line, pos: 0 };
        if c.done() {
            continue;
        }
        if !have_header {
            if !c.eat("graph") {
                return Err(err("the text must start with `graph NAME`".into()));
            }
            g.name = c.word().map_err(err)?.to_string();
            have_header = true;
            continue;
        }
        if c.eat("file") {
            let i = c.uint().map_err(err)?;
            if i != g.files.len() {
                return Err(err(format!(
                    "expected file {}, got file {i}",
                    g.files.len()
                )));
            }
            g.files.push(c.string().map_err(err)?);
            continue;
        }
        let (num, node, operands) = parse_node(&mut c, &ids).map_err(err)?;
        if ids.contains_key(&num) {
            return Err(err(format!("%{num} is defined twice")));
        }
        let id = g.add(node, &operands);
        ids.insert(num, id);
    }
    if !have_header {
        return Err(TextError {
            line: 1,
            message: "empty input: expected `graph NAME`".into(),
        });
    }
    Ok(g)
}

fn parse_node(
    c: &mut Cursor,
    ids: &HashMap<usize, NodeId>,
) -> Result<(usize, Node, Vec<NodeId>), String> {
    c.expect("%")?;
    let num = c.uint()?;
    c.expect("=")?;
    let opname = c.word()?.to_string();
    let mut operands = vec![];
    c.ws();
    if c.s[c.pos..].starts_with('%') {
        loop {
            c.expect("%")?;
            let k = c.uint()?;
            operands.push(
                *ids.get(&k)
                    .ok_or(format!("%{k} is used before it is defined"))?,
            );
            if !c.eat(",") {
                break;
            }
        }
    }
    let mut attrs = BTreeMap::new();
    while !c.eat(":") {
        if c.done() {
            return Err("expected `:` and a type".into());
        }
        let k = c.word()?.to_string();
        let v = if c.eat("=") {
            c.value()?
        } else {
            AttrVal::Flag
        };
        attrs.insert(k, v);
    }
    let op = Op::from_parts(&opname, &attrs)?;
    let ty = parse_type(c)?;
    let mut node = Node::new(op, ty);
    while !c.done() {
        c.expect("!")?;
        let key = c.word()?;
        if key == "approx" {
            node.approx = true;
            continue;
        }
        c.expect("=")?;
        match key {
            "name" => node.name = Some(c.string()?),
            "class" => node.class = Some(c.word()?.to_string()),
            "bound" => {
                node.bound = match c.value()? {
                    AttrVal::Float(x) => Some(x),
                    AttrVal::Int(i) => Some(i as f64),
                    _ => return Err("!bound needs a number".into()),
                }
            }
            "loc" => {
                let file = c.uint()? as u32;
                c.expect(":")?;
                let line = c.uint()? as u32;
                c.expect(":")?;
                let col = c.uint()? as u32;
                c.expect("+")?;
                let len = c.uint()? as u32;
                node.loc = Some(Loc {
                    file,
                    line,
                    col,
                    len,
                });
            }
            other => return Err(format!("unknown metadata `!{other}`")),
        }
    }
    Ok((num, node, operands))
}

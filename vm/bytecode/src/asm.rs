//! The assembler: a program from the text the disassembler prints
//! ([`Program::disassemble`]), so that VM tests and experiments can be
//! written as files. `assemble(disassemble(p)) == p` for every program
//! (tests/format.rs checks it on the shipped models). Header lines start
//! with `;`:
//!
//! ```text
//! ; model = m                          metadata (KEY without spaces = VALUE)
//! ; input #0 "x" = r0 from client      ports: input, weight (`transposed`), output
//! ; r0: s64.18[3]                      register types, in order
//! ; scope #0 "encoder.layer.0"         scope names, in order
//! ; scope encoder.layer.0              the scope of the instructions below
//!      3: mul dst=r2 a=r0 b=r0         an instruction (the index is optional)
//! ```
//!
//! Other `;` lines (the hash line) are comments. The result is validated;
//! errors name the line.

use crate::{validate, Instr, Kind, Owner, Port, Program, Reg, RegType};

/// A string printed with Rust's `{:?}`: `"…"` with `\\`, `\"`, `\n`, `\t`,
/// `\u{…}` escapes. Returns the string and the rest of the line.
fn unquote(s: &str) -> Result<(String, &str), String> {
    let mut chars = s
        .strip_prefix('"')
        .ok_or("expected a quoted name")?
        .char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 2..])),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0') => out.push('\0'),
                Some('u') => {
                    let rest: String = chars
                        .by_ref()
                        .map(|(_, c)| c)
                        .take_while(|&c| c != '}')
                        .collect();
                    let hex = rest.trim_start_matches('{');
                    let v = u32::from_str_radix(hex, 16).map_err(|_| "bad \\u escape")?;
                    out.push(char::from_u32(v).ok_or("bad \\u escape")?);
                }
                Some(c) => out.push(c),
                None => return Err("unterminated string".into()),
            },
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

/// A register type as `Display` prints it: `s64.18[3, 4]`, `pbool[]`.
fn reg_type(s: &str) -> Result<RegType, String> {
    let bad = || format!("`{s}` is not a register type (e.g. s64.18[3, 4], sbool[2])");
    let secret = match s.chars().next() {
        Some('s') => true,
        Some('p') => false,
        _ => return Err(bad()),
    };
    let (elem, dims) = s[1..].split_once('[').ok_or_else(bad)?;
    let kind = if elem == "bool" {
        Kind::Bool
    } else {
        let (ring, frac) = elem.split_once('.').ok_or_else(bad)?;
        Kind::Fixed {
            ring: ring.parse().map_err(|_| bad())?,
            frac: frac.parse().map_err(|_| bad())?,
        }
    };
    let dims = dims.strip_suffix(']').ok_or_else(bad)?;
    let shape = dims
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    Ok(RegType {
        secret,
        kind,
        shape,
    })
}

/// `field=value` pairs after a mnemonic; a value in brackets may hold spaces.
fn fields(s: &str) -> Result<Vec<(&str, &str)>, String> {
    let mut out = vec![];
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let (k, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("expected `field=value`, found `{rest}`"))?;
        let (v, next) = if after.starts_with('[') {
            let end = after.find(']').ok_or("unterminated list")? + 1;
            (&after[..end], &after[end..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.push((k.trim(), v));
        rest = next.trim_start();
    }
    Ok(out)
}

impl Program {
    /// A program from its text (see the module doc); errors name the line.
    pub fn assemble(text: &str) -> Result<Program, String> {
        let mut p = Program::default();
        let mut scope: Option<u32> = None;
        for (n, raw) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}", n + 1);
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(h) = line.strip_prefix(';') {
                let h = h.trim();
                let port = ["input", "weight", "output"].into_iter().find_map(|k| {
                    h.strip_prefix(k)
                        .and_then(|r| r.strip_prefix(" #"))
                        .map(|r| (k, r))
                });
                if let Some((kind, r)) = port {
                    let (_, r) = r
                        .split_once(' ')
                        .ok_or_else(|| at("expected `#N \"name\" = rK`".into()))?;
                    let (name, r) = unquote(r).map_err(at)?;
                    let r = r
                        .trim_start()
                        .strip_prefix('=')
                        .ok_or_else(|| at("expected `=`".into()))?;
                    let mut words = r.split_whitespace();
                    let reg =
                        <Reg as crate::Field>::parse(words.next().unwrap_or("")).map_err(at)?;
                    let (mut owner, mut transposed) = (None, false);
                    while let Some(w) = words.next() {
                        match (w, words.clone().next()) {
                            ("from", Some("client")) => owner = Some(Owner::Client),
                            ("from", Some("model_owner")) => owner = Some(Owner::ModelOwner),
                            ("from" | "to", Some("parties")) => owner = Some(Owner::Parties),
                            ("transposed", _) => transposed = true,
                            ("client" | "model_owner" | "parties", _) => continue,
                            _ => return Err(at(format!("unexpected `{w}`"))),
                        }
                    }
                    let port = Port {
                        name,
                        reg,
                        owner,
                        transposed,
                    };
                    match kind {
                        "input" => p.inputs.push(port),
                        "weight" => p.weights.push(port),
                        _ => p.outputs.push(port),
                    }
                } else if let Some(r) = h.strip_prefix("scope #") {
                    let (_, r) = r
                        .split_once(' ')
                        .ok_or_else(|| at("expected `#N \"name\"`".into()))?;
                    p.scopes.push(unquote(r).map_err(at)?.0);
                } else if let Some(name) = h.strip_prefix("scope ") {
                    let k = p.scopes.iter().position(|s| s == name).ok_or_else(|| {
                        at(format!(
                            "scope `{name}` is not declared (`; scope #N \"{name}\"`)"
                        ))
                    })?;
                    scope = Some(k as u32);
                } else if let Some((r, t)) = h.split_once(": ").filter(|(r, _)| {
                    r.starts_with('r') && r[1..].chars().all(|c| c.is_ascii_digit())
                }) {
                    if r[1..].parse::<usize>() != Ok(p.regs.len()) {
                        return Err(at(format!(
                            "register {r} out of order (expected r{})",
                            p.regs.len()
                        )));
                    }
                    p.regs.push(reg_type(t.trim()).map_err(at)?);
                } else if let Some((k, v)) = h
                    .split_once(" = ")
                    .or_else(|| h.strip_suffix(" =").map(|k| (k, "")))
                    .filter(|(k, _)| !k.contains(' '))
                {
                    // the value as printed (the line was trimmed at its end)
                    let v = raw.split_once(" = ").map_or(v, |(_, v)| v);
                    p.meta.push((k.to_string(), v.to_string()));
                }
                continue;
            }
            // an instruction, with or without its index
            let body = match line.split_once(": ") {
                Some((i, rest)) if i.chars().all(|c| c.is_ascii_digit()) => rest,
                _ => line,
            };
            let (mnemonic, rest) = body.split_once(' ').unwrap_or((body, ""));
            let ins = Instr::parse(mnemonic, &fields(rest).map_err(at)?).map_err(at)?;
            p.code.push(ins);
            if !p.scopes.is_empty() {
                p.scope_of.push(scope.unwrap_or(0));
            }
        }
        validate(&p).map_err(|e| format!("the program is invalid: {e}"))?;
        Ok(p)
    }
}

//! Hand-written test programs: a builder of registers and instructions.
#![allow(dead_code)]

use ditto_bytecode::{Instr, Kind, Owner, Port, Program, Reg, RegType};
use std::borrow::Cow;

/// A test program under construction.
pub struct B {
    pub p: Program,
}

pub fn ty(secret: bool, ring: u8, frac: u8, shape: &[u64]) -> RegType {
    RegType {
        secret,
        kind: if ring == 0 {
            Kind::Bool
        } else {
            Kind::Fixed { ring, frac }
        },
        shape: shape.to_vec(),
    }
}

impl B {
    pub fn new() -> B {
        B {
            p: Program::default(),
        }
    }
    pub fn reg(&mut self, t: RegType) -> Reg {
        self.p.regs.push(t);
        Reg(self.p.regs.len() as u32 - 1)
    }
    pub fn input(&mut self, name: &str, t: RegType) -> Reg {
        let r = self.reg(t);
        self.p.inputs.push(Port {
            name: name.into(),
            reg: r,
            owner: Some(Owner::Client),
            transposed: false,
        });
        self.p.code.push(Instr::Input {
            dst: r,
            port: self.p.inputs.len() as u32 - 1,
        });
        r
    }
    pub fn weight(&mut self, name: &str, t: RegType) -> Reg {
        let r = self.reg(t);
        self.p.weights.push(Port {
            name: name.into(),
            reg: r,
            owner: None,
            transposed: false,
        });
        self.p.code.push(Instr::Weight {
            dst: r,
            port: self.p.weights.len() as u32 - 1,
        });
        r
    }
    pub fn op(&mut self, t: RegType, f: impl FnOnce(Reg) -> Instr) -> Reg {
        let r = self.reg(t);
        self.p.code.push(f(r));
        r
    }
    pub fn output(mut self, name: &str, a: Reg) -> Program {
        self.p.outputs.push(Port {
            name: name.into(),
            reg: a,
            owner: None,
            transposed: false,
        });
        self.p.code.push(Instr::Output {
            port: self.p.outputs.len() as u32 - 1,
            a,
        });
        ditto_bytecode::validate(&self.p).expect("a valid test program");
        self.p
    }
}

pub fn no_weights(name: &str) -> Result<Cow<'static, [f64]>, String> {
    Err(format!("no weight {name}"))
}

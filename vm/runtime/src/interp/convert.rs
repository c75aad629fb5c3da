//! Format changes: Ditto's conversions (truncate, upcast, downcast) of shares and
//! public values between registers' formats.

use super::*;

/// Rescales a public element from `from` to `to` fraction bits (floor on the
/// way down) and reduces it into `Ro`.
#[inline]
pub(super) fn rescale_pub<Ri: Ring, Ro: Ring>(e: Ri, from: u32, to: u32) -> Ro {
    Ro::from_u64(ditto_bytecode::fixed::rescale(e.to_i64(), from, Ro::BITS, to) as u64)
}

/// The shift of a truncation from `from` to `to` fraction bits, which the
/// conversion protocol allows up to k_in − 2.
pub(super) fn trunc_bits<Ri: Ring>(from: u32, to: u32) -> Res<u32> {
    trunc_bits_in(Ri::BITS, from, to)
}

/// [`trunc_bits`] for a ring of `bits` bits.
pub(super) fn trunc_bits_in(bits: u32, from: u32, to: u32) -> Res<u32> {
    let m = from - to;
    if m + 2 > bits {
        return Err(E::M(format!(
            "a truncation by {m} bits exceeds the {bits}-bit ring"
        )));
    }
    Ok(m)
}

/// `x` (ring Ri, `from` fraction bits) in ring Ro with `to` fraction bits:
/// Ditto's conversion for a truncation (with or without a ring change) and
/// for an upcast; a local shift and reduction otherwise.
pub(super) fn convert<Ri: Rv, Ro: Rv>(
    st: &mut St,
    x: Arg<'_, Ri>,
    from: u32,
    to: u32,
) -> Res<Arg<'static, Ro>> {
    Ok(match x {
        Arg::P(v) => Arg::P(Cow::Owned(
            v.iter()
                .map(|&e| rescale_pub::<Ri, Ro>(e, from, to))
                .collect(),
        )),
        Arg::S(s) => {
            if to < from {
                let m = trunc_bits::<Ri>(from, to)?;
                Arg::S(Cow::Owned(st.party()?.convert::<Ri, Ro>(&s, m)?))
            } else {
                let sh = to - from;
                if Ri::BITS < Ro::BITS {
                    let y = st.party()?.convert::<Ri, Ro>(&s, 0)?;
                    Arg::S(Cow::Owned(if sh > 0 {
                        y.mul_scalar(Ro::ONE.shl(sh))
                    } else {
                        y
                    }))
                } else {
                    let y = if sh > 0 {
                        s.mul_scalar(Ri::ONE.shl(sh))
                    } else {
                        s.into_owned()
                    };
                    Arg::S(Cow::Owned(y.downcast::<Ro>()))
                }
            }
        }
    })
}

/// The conversion of an additive share of a product (see
/// [`Party::convert_additive`]) from `from` to `to` fraction bits.
pub(super) fn convert_z<Ri: Rv, Ro: Rv>(
    st: &mut St,
    z: &[Ri],
    from: u32,
    to: u32,
) -> Res<AShare<Ro>> {
    if to < from {
        let m = trunc_bits::<Ri>(from, to)?;
        Ok(st.party()?.convert_additive::<Ri, Ro>(z, m)?)
    } else {
        let y = st.party()?.convert_additive::<Ri, Ro>(z, 0)?;
        Ok(if to > from {
            y.mul_scalar(Ro::ONE.shl(to - from))
        } else {
            y
        })
    }
}

/// A value of ring `kin` with `fin` fraction bits, as an operand of ring R
/// with `fout` fraction bits.
pub(super) fn conv_value<'v, R: Rv>(
    st: &mut St,
    v: &'v Value,
    kin: u32,
    fin: u32,
    fout: u32,
) -> Res<Arg<'v, R>> {
    let bad = || E::M("a register holds a value of another type (internal error)".into());
    if kin == R::BITS && fin == fout {
        return R::view(v).ok_or_else(bad);
    }
    if kin == 32 {
        convert::<u32, R>(st, u32::view(v).ok_or_else(bad)?, fin, fout)
    } else {
        convert::<u64, R>(st, u64::view(v).ok_or_else(bad)?, fin, fout)
    }
}

/// `z` with `from` fraction bits rescaled to `to` in the same ring.
pub(super) fn refmt<R: Rv>(
    st: &mut St,
    z: Arg<'static, R>,
    from: u32,
    to: u32,
) -> Res<Arg<'static, R>> {
    if from == to {
        Ok(z)
    } else {
        convert::<R, R>(st, z, from, to)
    }
}

/// The conversion calls of one step, whatever their formats, in one pair of
/// rounds ([`Party::convert_many`]): one job per member (`keys`: the
/// members' [`Key::Conv`] classes), each reading its operand in place.
pub(super) fn conv_batch(
    st: &mut St,
    regs: &Regs,
    members: &[&Instr],
    keys: &[Key],
) -> Res<Vec<Value>> {
    use ditto_protocol::{ConvIn, ConvJob, ConvOut};
    let bad = || E::M("a conversion's operand has another type (internal error)".into());
    let mut jobs = Vec::with_capacity(members.len());
    for (ins, k) in members.iter().zip(keys) {
        let (
            Instr::Convert { a, .. },
            Key::Conv {
                ki,
                ko,
                fi,
                fo,
                additive,
            },
        ) = (ins, *k)
        else {
            unreachable!("class Conv")
        };
        let v = regs.get(*a)?;
        let m = |bits: u32| {
            if fo < fi {
                trunc_bits_in(bits, fi, fo)
            } else {
                Ok(0)
            }
        };
        jobs.push(match (ki, additive) {
            (32, true) => ConvJob::From32(
                ConvIn::Additive(u32::additive(v).ok_or_else(bad)?),
                ko,
                m(32)?,
            ),
            (_, true) => ConvJob::From64(
                ConvIn::Additive(u64::additive(v).ok_or_else(bad)?),
                ko,
                m(64)?,
            ),
            (32, false) => ConvJob::From32(ConvIn::Replicated(secret_of::<u32>(v)?), ko, m(32)?),
            (_, false) => ConvJob::From64(ConvIn::Replicated(secret_of::<u64>(v)?), ko, m(64)?),
        });
    }
    let outs = st.party()?.convert_many(jobs)?;
    Ok(outs
        .into_iter()
        .zip(keys)
        .map(|(out, k)| {
            let Key::Conv { fi, fo, .. } = *k else {
                unreachable!("class Conv")
            };
            // an upcast to more fraction bits: the rest is a local shift
            let sh = fo.saturating_sub(fi);
            match out {
                ConvOut::R32(y) => u32::secret(if sh > 0 { y.mul_scalar(1u32 << sh) } else { y }),
                ConvOut::R64(y) => u64::secret(if sh > 0 { y.mul_scalar(1u64 << sh) } else { y }),
            }
        })
        .collect())
}

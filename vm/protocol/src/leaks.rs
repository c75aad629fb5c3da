//! Seeded leaks, for the privacy suite's mutation test
//! (vm/protocol/tests/privacy.rs): each one removes a single mask, fixes a
//! single random bit, opens a single value or reuses a single random value
//! in one primitive — and keeps every result correct, so that only a
//! privacy test can notice it. Compiled in only with the `leaks` feature,
//! which the crate's own tests enable (a dev-dependency on itself); without
//! it [`on`] is the constant `false` and no leak exists in the code.

/// One seeded leak and the primitive it weakens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Leak {
    /// `input`: the owner's component x_o = F(k_{o−1}) is zero, so it sends
    /// x itself to P_{o+1}.
    InputMaskDropped = 1,
    /// `mul`: one zero-sharing value α used for every element.
    MulZeroReused,
    /// `matmul`: the zero-sharing dropped (α = 0).
    MatmulZeroDropped,
    /// Conversion: the mask's low part r' (B–H stream) is zero, so A opens
    /// x + 2^(k−2) + r_msb·2^(k−1).
    ConvMaskDropped,
    /// Conversion: the mask bit's part v (B–H stream) fixed to 0, so
    /// r_msb = e ⊕ g is known to A, which opens x + 2^(k−2) + r' whole.
    ConvHelperBitFixed,
    /// Conversion: the mask bit's part e (A–H stream) fixed to 0, so
    /// r_msb = g ⊕ v is known to B, which also knows r' and learns the top
    /// bit of x + 2^(k−2) + r' from c_msb.
    ConvAHelperBitFixed,
    /// Conversion: the mask bit's part g (A–B stream) fixed to 0, so H
    /// knows r_msb = e ⊕ v and r' and learns the same from c_msb.
    ConvPairBitFixed,
    /// Conversion preparation: s (A–H stream) is zero, so B receives
    /// u = e ⊕ g itself, learns e and with it r_msb.
    ConvPrepMaskDropped,
    /// Comparison set-up (`add_setup`): A's mask t is zero, so B sees
    /// a = x_{h+1} + x_{h+2}.
    AdderMaskDropped,
    /// Boolean AND of words (`and_many`, the prefix adder and the highest
    /// set bit): one zero-sharing word used for every element.
    AndZeroReused,
    /// Packed ANDs of bit columns (`and_cols`, the sign): the first
    /// column's zero-sharing used for every column of the call.
    AndColsZeroReused,
    /// B2A: b opened unmasked (c = b), the result the public c.
    B2aOpenUnmasked,
    /// B2A set-up (`random_bits`): μ is zero, so P1 sees t = ρ0 ⊕ ρ1 and
    /// learns r, which unmasks the online opening.
    B2aSetupMaskDropped,
    /// `select`: the selector opened to all, the product local.
    SelectOpensSelector,
    /// `max_rows`: each comparison's bit opened instead of made arithmetic.
    MaxOpensComparison,
    /// The range guard on a fused product: the additive sharing reshared
    /// without a fresh zero-sharing, so A gets z_B here and z_H in the
    /// conversion, and opens x.
    GuardFreshMaskDropped,
}

impl Leak {
    pub const ALL: [Leak; 16] = [
        Leak::InputMaskDropped,
        Leak::MulZeroReused,
        Leak::MatmulZeroDropped,
        Leak::ConvMaskDropped,
        Leak::ConvHelperBitFixed,
        Leak::ConvAHelperBitFixed,
        Leak::ConvPairBitFixed,
        Leak::ConvPrepMaskDropped,
        Leak::AdderMaskDropped,
        Leak::AndZeroReused,
        Leak::AndColsZeroReused,
        Leak::B2aOpenUnmasked,
        Leak::B2aSetupMaskDropped,
        Leak::SelectOpensSelector,
        Leak::MaxOpensComparison,
        Leak::GuardFreshMaskDropped,
    ];
}

#[cfg(feature = "leaks")]
static ACTIVE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Turns one leak on (every party of the process), or all off.
#[cfg(feature = "leaks")]
pub fn set(leak: Option<Leak>) {
    ACTIVE.store(
        leak.map_or(0, |l| l as u8),
        std::sync::atomic::Ordering::SeqCst,
    );
}

/// Whether `leak` is on.
#[inline(always)]
pub(crate) fn on(leak: Leak) -> bool {
    #[cfg(feature = "leaks")]
    {
        ACTIVE.load(std::sync::atomic::Ordering::Relaxed) == leak as u8
    }
    #[cfg(not(feature = "leaks"))]
    {
        let _ = leak;
        false
    }
}

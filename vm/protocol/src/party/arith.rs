//! Inputs, outputs and arithmetic: sharing and revealing, resharing, products
//! and matrix products.

use super::*;

/// This party's additive share of x·y (replicated x and y), masked by its
/// component α of a zero-sharing: x_i·y_i + x_i·y_{i+1} + x_{i+1}·y_i + α_i.
pub(super) fn masked_product<R: Ring>(x: &AShare<R>, y: &AShare<R>, alpha: &[R]) -> Vec<R> {
    (0..x.len())
        .map(|j| {
            x.a[j]
                .mul(y.a[j])
                .add(x.a[j].mul(y.b[j]))
                .add(x.b[j].mul(y.a[j]))
                .add(alpha[j])
        })
        .collect()
}

/// A zero-sharing component F(next) − F(prev) from a pair of streams.
pub(super) fn zero_from<R: Ring>(next: &mut Prg, prev: &mut Prg, n: usize) -> Vec<R> {
    let nx: Vec<R> = next.ring(n);
    let pv: Vec<R> = prev.ring(n);
    kernels::sub(&nx, &pv)
}

impl<'c> Party<'c> {
    /// Sharing of a value known to party `owner` (`x` is `Some` there).
    /// Components: x_{o−1} = 0, x_o = F(k_{o−1}), x_{o+1} = x − x_o, which the
    /// owner sends to P_{o+1}. 1 round, k bits (one element to one neighbour).
    pub fn input<R: Ring>(
        &mut self,
        owner: usize,
        x: Option<&[R]>,
        n: usize,
    ) -> Result<AShare<R>, ProtocolError> {
        let o = owner % 3;
        if self.id == o {
            let x = x.expect("the owner supplies its input");
            assert_eq!(x.len(), n, "input length");
            let mut xo: Vec<R> = self.st.prev.ring(n);
            if leaks::on(Leak::InputMaskDropped) {
                xo.fill(R::ZERO);
            }
            let rest = kernels::sub(x, &xo);
            self.comm
                .exchange(Phase::Online, vec![(self.succ(), to_bytes(&rest))], &[])?;
            Ok(AShare { a: xo, b: rest })
        } else if self.id == (o + 1) % 3 {
            let got = self.comm.exchange(Phase::Online, vec![], &[o])?;
            Ok(AShare {
                a: parse(&got[0], n, o, "input")?,
                b: vec![R::ZERO; n],
            })
        } else {
            let mut xo: Vec<R> = self.st.next.ring(n);
            if leaks::on(Leak::InputMaskDropped) {
                xo.fill(R::ZERO);
            }
            Ok(AShare {
                a: vec![R::ZERO; n],
                b: xo,
            })
        }
    }

    /// Reveal to all: P_{i+1} sends x_{i+2} to Pi. 1 round, 3k bits.
    pub fn reveal<R: Ring>(&mut self, x: &AShare<R>) -> Result<Vec<R>, ProtocolError> {
        let n = x.len();
        let got = self.comm.exchange(
            Phase::Online,
            vec![(self.pred(), to_bytes(&x.b))],
            &[self.succ()],
        )?;
        let third: Vec<R> = parse(&got[0], n, self.succ(), "reveal")?;
        Ok((0..n).map(|j| x.a[j].add(x.b[j]).add(third[j])).collect())
    }

    /// Reveal to party `to` only: P_{to+1} sends x_{to+2}. 1 round, k bits.
    pub fn reveal_to<R: Ring>(
        &mut self,
        x: &AShare<R>,
        to: usize,
    ) -> Result<Option<Vec<R>>, ProtocolError> {
        let to = to % 3;
        let n = x.len();
        if self.id == to {
            let got = self.comm.exchange(Phase::Online, vec![], &[self.succ()])?;
            let third: Vec<R> = parse(&got[0], n, self.succ(), "reveal")?;
            Ok(Some(
                (0..n).map(|j| x.a[j].add(x.b[j]).add(third[j])).collect(),
            ))
        } else if self.id == (to + 1) % 3 {
            self.comm
                .exchange(Phase::Online, vec![(to, to_bytes(&x.b))], &[])?;
            Ok(None)
        } else {
            Ok(None)
        }
    }

    /// Turns a 3-out-of-3 additive sharing (z_i at Pi, already masked by a
    /// zero-sharing) into RSS: Pi sends z_i to P_{i−1}. 1 round, 3k bits.
    pub(super) fn reshare<R: Ring>(
        &mut self,
        z: Vec<R>,
        phase: Phase,
        what: &'static str,
    ) -> Result<AShare<R>, ProtocolError> {
        let n = z.len();
        let got = self
            .comm
            .exchange(phase, vec![(self.pred(), to_bytes(&z))], &[self.succ()])?;
        let b = parse(&got[0], n, self.succ(), what)?;
        Ok(AShare { a: z, b })
    }

    /// Element-wise product (Araki et al. CCS'16):
    /// z_i = x_i·y_i + x_i·y_{i+1} + x_{i+1}·y_i + α_i, then reshare.
    /// 1 round, 3k bits per element. No truncation: fraction bits add up.
    pub fn mul<R: Ring>(
        &mut self,
        x: &AShare<R>,
        y: &AShare<R>,
    ) -> Result<AShare<R>, ProtocolError> {
        let z = self.mul_local(x, y);
        self.reshare(z, Phase::Online, "mul")
    }

    /// Matrix product, optionally batched: x is batch×m×k, y batch×k×n (or
    /// k×n when `y_shared`). Z_i = X_i·(Y_i + Y_{i+1}) + X_{i+1}·Y_i + α_i:
    /// two local products per party; 1 round, 3k bits per *output* element.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul<R: Ring>(
        &mut self,
        x: &AShare<R>,
        y: &AShare<R>,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        y_shared: bool,
    ) -> Result<AShare<R>, ProtocolError> {
        let z = self.matmul_local(x, y, batch, m, k, n, y_shared);
        self.reshare(z, Phase::Online, "matmul")
    }

    /// Several independent matrix products in one round: the local products
    /// of each (x, y, batch, m, k, n, y_shared), masked, then one reshare of
    /// all of them. Same bits as separate calls, 1 round in total.
    #[allow(clippy::type_complexity)]
    pub fn matmul_many<R: Ring>(
        &mut self,
        items: &[(&AShare<R>, &AShare<R>, usize, usize, usize, usize, bool)],
    ) -> Result<Vec<AShare<R>>, ProtocolError> {
        let mut z = Vec::new();
        let mut lens = Vec::new();
        for &(x, y, batch, m, k, n, shared) in items {
            let zi = self.matmul_local(x, y, batch, m, k, n, shared);
            lens.push(zi.len());
            z.extend(zi);
        }
        let all = self.reshare(z, Phase::Online, "matmul")?;
        let mut out = Vec::with_capacity(lens.len());
        let mut off = 0;
        for l in lens {
            out.push(AShare {
                a: all.a[off..off + l].to_vec(),
                b: all.b[off..off + l].to_vec(),
            });
            off += l;
        }
        Ok(out)
    }

    /// The local half of [`Party::mul`]: this party's masked additive share
    /// z_i of x·y. No communication.
    pub fn mul_local<R: Ring>(&mut self, x: &AShare<R>, y: &AShare<R>) -> Vec<R> {
        let mut alpha = self.zero_share::<R>(x.len());
        if leaks::on(Leak::MulZeroReused) {
            let first = alpha.first().copied().unwrap_or(R::ZERO);
            alpha.fill(first);
        }
        masked_product(x, y, &alpha)
    }

    /// The local half of [`Party::matmul`]: this party's masked additive
    /// share of X·Y. No communication.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_local<R: Ring>(
        &mut self,
        x: &AShare<R>,
        y: &AShare<R>,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        y_shared: bool,
    ) -> Vec<R> {
        // x_a·y_a + x_a·y_b + x_b·y_a, with the sum taken on the smaller
        // operand: x_a·(y_a + y_b) + x_b·y_a, or (x_a + x_b)·y_a + x_a·y_b
        // when x is the smaller (a decode step's row or a lookup's one-hot
        // against a weight table, which is then read once per share with
        // no copy). The same ring elements either way.
        let mut z = if x.a.len() < y.a.len() {
            let xsum = kernels::add(&x.a, &x.b);
            let mut z = kernels::matmul_batched(&xsum, &y.a, batch, m, k, n, y_shared);
            let z2 = kernels::matmul_batched(&x.a, &y.b, batch, m, k, n, y_shared);
            kernels::add_assign(&mut z, &z2);
            z
        } else {
            let ysum = kernels::add(&y.a, &y.b);
            let mut z = kernels::matmul_batched(&x.a, &ysum, batch, m, k, n, y_shared);
            let z2 = kernels::matmul_batched(&x.b, &y.a, batch, m, k, n, y_shared);
            kernels::add_assign(&mut z, &z2);
            z
        };
        let alpha = self.zero_share::<R>(z.len());
        if !leaks::on(Leak::MatmulZeroDropped) {
            kernels::add_assign(&mut z, &alpha);
        }
        z
    }
}

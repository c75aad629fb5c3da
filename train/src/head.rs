//! A linear classifier (multinomial logistic regression) on fixed features:
//! the head of a classification task over a frozen model's outputs
//! (`ditto eval --train-head`), trained with AdamW on the mean
//! cross-entropy plus an L2 penalty, full batch.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

/// Weights [D, C] and biases [C].
pub struct Head {
    pub w: Vec<f64>,
    pub b: Vec<f64>,
    pub dim: usize,
    pub classes: usize,
}

impl Head {
    /// Fits a head to `x` (rows of `dim` features) and class indices `y`.
    pub fn fit(
        x: &[Vec<f64>],
        y: &[usize],
        classes: usize,
        steps: usize,
        l2: f64,
    ) -> candle_core::Result<Head> {
        let n = x.len();
        let dim = x.first().map(Vec::len).unwrap_or(0);
        let dev = Device::Cpu;
        let xs = Tensor::from_vec(x.concat(), (n, dim), &dev)?.to_dtype(DType::F32)?;
        let ys = Tensor::from_vec(y.iter().map(|&c| c as u32).collect::<Vec<_>>(), n, &dev)?;
        let w = Var::zeros((dim, classes), DType::F32, &dev)?;
        let b = Var::zeros(classes, DType::F32, &dev)?;
        let mut opt = AdamW::new(
            vec![w.clone(), b.clone()],
            ParamsAdamW {
                lr: 0.05,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?;
        for _ in 0..steps {
            let logits = xs.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
            let ce = candle_nn::loss::cross_entropy(&logits, &ys)?;
            let loss = (ce + w.as_tensor().sqr()?.sum_all()?.affine(l2, 0.0)?)?;
            opt.backward_step(&loss)?;
        }
        let flat = |t: &Tensor| -> candle_core::Result<Vec<f64>> {
            t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()
        };
        Ok(Head {
            w: flat(w.as_tensor())?,
            b: flat(b.as_tensor())?,
            dim,
            classes,
        })
    }

    /// The most likely class of one feature row.
    pub fn predict(&self, x: &[f64]) -> usize {
        (0..self.classes)
            .map(|c| {
                let s: f64 = (0..self.dim)
                    .map(|i| x[i] * self.w[i * self.classes + c])
                    .sum();
                (c, s + self.b[c])
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(c, _)| c)
            .unwrap_or(0)
    }
}

/// The fraction of `rows` whose predicted class is `y`.
pub fn accuracy(head: &Head, rows: &[Vec<f64>], y: &[usize]) -> f64 {
    let ok = rows
        .iter()
        .zip(y)
        .filter(|(r, &c)| head.predict(r) == c)
        .count();
    ok as f64 / rows.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated clusters are learnt; shuffled labels are not.
    #[test]
    fn a_head_learns_separable_classes_and_not_noise() {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..300 {
            let c = i % 3;
            let jitter = ((i * 7919) % 101) as f64 / 101.0 - 0.5;
            let mut row = vec![0.1 * jitter; 4];
            row[c] += 1.0;
            x.push(row);
            y.push(c);
        }
        let h = Head::fit(&x, &y, 3, 200, 1e-4).unwrap();
        assert!(accuracy(&h, &x, &y) > 0.99);
        // labels unrelated to the features: about chance
        let noise: Vec<usize> = (0..300).map(|i| (i * 7 / 3) % 3).collect();
        let h = Head::fit(&x, &noise, 3, 200, 1e-4).unwrap();
        assert!(accuracy(&h, &x, &noise) < 0.6);
    }
}

//! Weights in HuggingFace safetensors files: memory-mapped reading by tensor
//! name (float tensors converted to f64; integer tensors such as
//! `embeddings.position_ids` are listed but refused as weights, with the reason),
//! and writing of generated weights.

use crate::ir::eval::{Tensor, WeightSource};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot open weights file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid safetensors file: {message}")]
    Format { path: PathBuf, message: String },
}

/// Shape and element type of one stored tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub shape: Vec<usize>,
    pub dtype: String,
    pub is_float: bool,
}

/// A memory-mapped safetensors file.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    info: BTreeMap<String, TensorInfo>,
}

fn is_float(d: Dtype) -> bool {
    matches!(d, Dtype::F64 | Dtype::F32 | Dtype::F16 | Dtype::BF16)
}

impl SafetensorsFile {
    pub fn open(path: &Path) -> Result<SafetensorsFile, WeightsError> {
        let io = |source| WeightsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process; a file
        // truncated underneath us is the one hazard, as with any mmap reader.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
        let st = SafeTensors::deserialize(&mmap).map_err(|e| WeightsError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let info = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let dtype = view.dtype();
                (
                    name,
                    TensorInfo {
                        shape: view.shape().to_vec(),
                        dtype: format!("{dtype:?}"),
                        is_float: is_float(dtype),
                    },
                )
            })
            .collect();
        Ok(SafetensorsFile {
            path: path.to_path_buf(),
            mmap,
            info,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every stored tensor, by name.
    pub fn info(&self) -> &BTreeMap<String, TensorInfo> {
        &self.info
    }
}

fn half_to_f64(bits: u16) -> f64 {
    let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
    let exp = ((bits >> 10) & 0x1f) as i32;
    let man = (bits & 0x3ff) as f64;
    match exp {
        0 => sign * man * 2f64.powi(-24),
        31 => {
            if man == 0.0 {
                sign * f64::INFINITY
            } else {
                f64::NAN
            }
        }
        e => sign * (1.0 + man / 1024.0) * 2f64.powi(e - 15),
    }
}

impl WeightSource for SafetensorsFile {
    fn tensor(&self, name: &str) -> Result<Tensor, String> {
        // The header was validated in `open`; deserialising again only parses it.
        let st = SafeTensors::deserialize(&self.mmap).map_err(|e| e.to_string())?;
        let view = st
            .tensor(name)
            .map_err(|_| format!("not found in {}", self.path.display()))?;
        let bytes = view.data();
        let data: Vec<f64> = match view.dtype() {
            Dtype::F64 => bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half_to_f64(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16) as f64)
                .collect(),
            other => {
                return Err(format!(
                    "is a {other:?} tensor; weights must be floating point (F64, F32, F16 or BF16)"
                ))
            }
        };
        if let Some((i, v)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(format!(
                "tensor {name:?}: element {i} is {v} in {}: weights must be finite numbers",
                self.path.display()
            ));
        }
        Ok(Tensor::new(view.shape().to_vec(), data))
    }
}

/// Writes f32 tensors to a safetensors file (used by `ditto gen-weights`).
pub fn write_f32(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<(), String> {
    let bufs: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| {
            let bytes = t
                .data
                .iter()
                .flat_map(|&x| (x as f32).to_le_bytes())
                .collect();
            (n.clone(), t.shape.clone(), bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bufs
        .iter()
        .map(|(n, s, b)| {
            safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| e.to_string())
}

/// Weights held in memory (generated ones, or tests').
#[derive(Debug, Clone, Default)]
pub struct InMemory(pub BTreeMap<String, Tensor>);

impl InMemory {
    pub fn info(&self) -> BTreeMap<String, TensorInfo> {
        self.0
            .iter()
            .map(|(n, t)| {
                let info = TensorInfo {
                    shape: t.shape.clone(),
                    dtype: "F64".into(),
                    is_float: true,
                };
                (n.clone(), info)
            })
            .collect()
    }
}

impl WeightSource for InMemory {
    fn tensor(&self, name: &str) -> Result<Tensor, String> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| "not among the generated weights".to_string())
    }
    fn values(&self, name: &str) -> Result<std::borrow::Cow<'_, [f64]>, String> {
        self.0
            .get(name)
            .map(|t| std::borrow::Cow::Borrowed(&t.data[..]))
            .ok_or_else(|| "not among the generated weights".to_string())
    }
}

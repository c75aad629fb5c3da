//! Text → token ids with a HuggingFace `tokenizer.json`, or the tokenizer in
//! a GGUF file's metadata (padding and truncation off, special tokens
//! added), and `--ids` parsing.

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

pub fn encode(tokenizer_json: &Path, text: &str) -> Result<Vec<u32>> {
    Ok(encode_tokens(tokenizer_json, text, None)?.ids)
}

/// A text, or a pair of texts (token types 0 and 1, as the tokenizer's
/// pair template gives them).
pub fn encode_tokens(
    tokenizer_json: &Path,
    text: &str,
    pair: Option<&str>,
) -> Result<crate::inputs::Tokens> {
    let mut tok = load(tokenizer_json)?;
    tok.with_padding(None);
    tok.with_truncation(None)
        .map_err(|e| anyhow!("cannot disable truncation: {e}"))?;
    let enc = match pair {
        None => tok.encode(text, true),
        Some(b) => tok.encode((text, b), true),
    }
    .map_err(|e| anyhow!("cannot tokenize: {e}"))?;
    Ok(crate::inputs::Tokens {
        ids: enc.get_ids().to_vec(),
        segments: pair.map(|_| enc.get_type_ids().to_vec()),
    })
}

/// A tokenizer from a `tokenizer.json`, or from a GGUF file's metadata.
pub fn load(path: &Path) -> Result<tokenizers::Tokenizer> {
    let fail = |e: String| anyhow!("cannot load tokenizer {}: {e}", path.display());
    if crate::checkpoint::is_gguf(path) {
        let g = ditto_compiler::gguf::Gguf::open(path).map_err(anyhow::Error::msg)?;
        let doc = g.tokenizer_json().map_err(anyhow::Error::msg)?;
        doc.to_string()
            .parse::<tokenizers::Tokenizer>()
            .map_err(|e| fail(e.to_string()))
    } else {
        tokenizers::Tokenizer::from_file(path).map_err(|e| fail(e.to_string()))
    }
}

/// The GGUF weights file itself (its metadata holds the tokenizer), or the
/// tokenizer.json beside a weights file or in a weights folder (which
/// `--text` needs).
pub fn tokenizer_beside(weights: &Option<PathBuf>) -> Result<PathBuf> {
    let Some(w) = weights else {
        bail!("--text needs the tokenizer.json beside --weights; with --random-weights pass --ids");
    };
    if crate::checkpoint::is_gguf(w) {
        return Ok(w.clone());
    }
    let dir = if w.is_dir() {
        w.clone()
    } else {
        w.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let tj = dir.join("tokenizer.json");
    if !tj.exists() {
        bail!(
            "--text needs {} (put tokenizer.json beside the weights, or pass --ids)",
            tj.display()
        );
    }
    Ok(tj)
}

pub fn parse_ids(s: &str) -> Result<Vec<u32>> {
    s.split(',')
        .map(|t| {
            t.trim()
                .parse::<u32>()
                .with_context(|| format!("--ids: `{}` is not a token id", t.trim()))
        })
        .collect()
}

//! Text → token ids with a HuggingFace `tokenizer.json` (padding and truncation
//! off, special tokens added), and `--ids` parsing.

use anyhow::{anyhow, Context, Result};
use std::path::Path;

pub fn encode(tokenizer_json: &Path, text: &str) -> Result<Vec<u32>> {
    let mut tok = tokenizers::Tokenizer::from_file(tokenizer_json)
        .map_err(|e| anyhow!("cannot load tokenizer {}: {e}", tokenizer_json.display()))?;
    tok.with_padding(None);
    tok.with_truncation(None)
        .map_err(|e| anyhow!("cannot disable truncation: {e}"))?;
    let enc = tok
        .encode(text, true)
        .map_err(|e| anyhow!("cannot tokenize: {e}"))?;
    Ok(enc.get_ids().to_vec())
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

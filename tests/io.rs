//! I/O: safetensors and `.npy` round trips, foreign dtypes, corrupt files, atomic saves, and
//! inferring an RNN from PyTorch state_dict names and shapes.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use recur::io::{self, HostTensor};
use recur::rnn::state_dict::{config_from_state_dict, state_dict_from_params, state_dict_metadata};
use recur::{CellKind, Error, ParamLayout, RnnConfig};

use safetensors::tensor::{serialize, Dtype, TensorView};

/// A fresh empty directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recur-io-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// xorshift64*: a small seeded PRNG, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn tensor(rng: &mut Rng, shape: &[usize]) -> HostTensor {
    let n = shape.iter().product();
    HostTensor::new(shape.to_vec(), (0..n).map(|_| rng.f32()).collect()).unwrap()
}

fn sample_tensors() -> Vec<(String, HostTensor)> {
    let mut rng = Rng(7);
    vec![
        ("lstm.weight_ih_l0".into(), tensor(&mut rng, &[8, 3])),
        ("lstm.bias_ih_l0".into(), tensor(&mut rng, &[8])),
        ("scalar".into(), tensor(&mut rng, &[])),
        ("empty".into(), tensor(&mut rng, &[0, 4])),
        ("cube".into(), tensor(&mut rng, &[2, 3, 5])),
    ]
}

// ---------------------------------------------------------------------------------------------
// safetensors

#[test]
fn safetensors_round_trip_with_metadata() {
    let dir = scratch("st-round-trip");
    let path = dir.join("model.safetensors");
    let tensors = sample_tensors();
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("nonlinearity".to_string(), "relu".to_string());
    io::save(&path, &tensors, &meta).unwrap();
    let (got, got_meta) = io::load(&path).unwrap();
    assert_eq!(got_meta, meta);
    assert_eq!(got.len(), tensors.len());
    for (name, t) in &tensors {
        assert_eq!(&got[name], t, "{name}");
    }
    // No metadata written, none read back.
    io::save(&path, &tensors, &BTreeMap::new()).unwrap();
    assert!(io::load(&path).unwrap().1.is_empty());
    assert_eq!(entries(&dir), ["model.safetensors"]);
    fs::remove_dir_all(&dir).unwrap();
}

/// A one-tensor safetensors file of `dtype` written by the safetensors crate itself.
fn foreign(dtype: Dtype, shape: Vec<usize>, bytes: &[u8]) -> Vec<u8> {
    let view = TensorView::new(dtype, shape, bytes).unwrap();
    serialize([("t", view)], None).unwrap()
}

#[test]
fn safetensors_loads_f16_bf16_and_f64() {
    let values = [0.0f32, 1.0, -2.5, 0.333_333_34, 65504.0, -1e-3];
    let f16: Vec<u8> = values
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = values
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    let f64: Vec<u8> = values
        .iter()
        .flat_map(|&x| (x as f64).to_le_bytes())
        .collect();

    let (t, _) = io::load_bytes(&foreign(Dtype::F16, vec![2, 3], &f16)).unwrap();
    let want: Vec<f32> = values
        .iter()
        .map(|&x| half::f16::from_f32(x).to_f32())
        .collect();
    assert_eq!(t["t"].shape, [2, 3]);
    assert_eq!(t["t"].data, want);

    let (t, _) = io::load_bytes(&foreign(Dtype::BF16, vec![3, 2], &bf16)).unwrap();
    let want: Vec<f32> = values
        .iter()
        .map(|&x| half::bf16::from_f32(x).to_f32())
        .collect();
    assert_eq!(t["t"].shape, [3, 2]);
    assert_eq!(t["t"].data, want);

    let dir = scratch("st-f64");
    let path = dir.join("f64.safetensors");
    fs::write(&path, foreign(Dtype::F64, vec![6], &f64)).unwrap();
    let (t, _) = io::load(&path).unwrap();
    assert_eq!(t["t"].shape, [6]);
    assert_eq!(t["t"].data, values);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn safetensors_other_dtypes_are_dtype_errors() {
    for (dtype, width) in [
        (Dtype::I32, 4),
        (Dtype::I64, 8),
        (Dtype::U8, 1),
        (Dtype::BOOL, 1),
    ] {
        let b = foreign(dtype, vec![2], &vec![0u8; 2 * width]);
        match io::load_bytes(&b) {
            Err(Error::Dtype { name, .. }) => assert_eq!(name, "t"),
            other => panic!("{dtype:?}: {other:?}"),
        }
    }
}

#[test]
fn safetensors_missing_file_is_io_error() {
    let dir = scratch("st-missing");
    assert!(matches!(
        io::load(&dir.join("nope.safetensors")),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        io::read_f32(&dir.join("nope.npy")),
        Err(Error::Io { .. })
    ));
    fs::remove_dir_all(&dir).unwrap();
}

/// Files with no end (a device, a FIFO) and files over the size limit are refused before a
/// byte is read, by every reader: safetensors, `.npy`, checkpoints.
#[test]
fn readers_refuse_endless_and_oversized_files() {
    let dir = scratch("endless");
    // A sparse file one byte over the limit: no disk space, and nothing may read it.
    let big = dir.join("big.safetensors");
    fs::File::create(&big)
        .unwrap()
        .set_len(io::MAX_FILE_BYTES + 1)
        .unwrap();
    let over = |r: Result<(), Error>| match r {
        Err(Error::Format { reason, .. }) => assert!(reason.contains("over the limit"), "{reason}"),
        other => panic!("{other:?}"),
    };
    over(io::load(&big).map(|_| ()));
    over(io::read_f32(&big).map(|_| ()));
    over(recur::train::Checkpoint::load(&big).map(|_| ()));
    let mut endless = vec![dir.clone()];
    if Path::new("/dev/zero").exists() {
        endless.push(PathBuf::from("/dev/zero"));
    }
    #[cfg(unix)]
    {
        let fifo = dir.join("fifo");
        if std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success())
        {
            endless.push(fifo);
        }
    }
    for p in &endless {
        for r in [
            io::load(p).map(|_| ()),
            io::read_f32(p).map(|_| ()),
            recur::train::Checkpoint::load(p).map(|_| ()),
        ] {
            assert!(matches!(r, Err(Error::Format { .. })), "{p:?}: {r:?}");
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn safetensors_corrupt_files_never_panic() {
    let mut meta = BTreeMap::new();
    meta.insert("k".to_string(), "v".to_string());
    let good = io::to_safetensors_bytes(&sample_tensors(), &meta).unwrap();
    assert!(io::load_bytes(&good).is_ok());

    // Every truncation is an error.
    for len in 0..good.len() {
        assert!(
            matches!(io::load_bytes(&good[..len]), Err(Error::Format { .. })),
            "truncated to {len}"
        );
    }
    // Trailing bytes are an error too.
    let mut longer = good.clone();
    longer.push(0);
    assert!(matches!(io::load_bytes(&longer), Err(Error::Format { .. })));

    // Flipped bits and overwritten bytes: any result but a panic; a success is consistent.
    let mut rng = Rng(0x5eed);
    for _ in 0..4000 {
        let mut b = good.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(b.len());
            if rng.below(2) == 0 {
                b[i] ^= 1 << rng.below(8);
            } else {
                b[i] = rng.next() as u8;
            }
        }
        if let Ok((tensors, _)) = io::load_bytes(&b) {
            for t in tensors.values() {
                assert_eq!(t.len(), t.numel());
            }
        }
    }
    // Mutations concentrated in the 8-byte length and the JSON header.
    let header_end = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    for _ in 0..4000 {
        let mut b = good.clone();
        let i = rng.below(header_end);
        b[i] = rng.next() as u8;
        let _ = io::load_bytes(&b);
    }
    // Random garbage.
    for _ in 0..2000 {
        let len = rng.below(300);
        let b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(io::load_bytes(&b).is_err());
    }
    // A plausible length followed by garbage, and hand-made hostile headers.
    for header in [
        r#"{"t":{"dtype":"F32","shape":[18446744073709551615,2],"data_offsets":[0,0]}}"#,
        r#"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#,
        r#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
        r#"{"t":{"dtype":"X99","shape":[2],"data_offsets":[0,8]}}"#,
        r#"{"__metadata__":{"a":1},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
        r#"[1,2,3]"#,
    ] {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend(header.as_bytes());
        b.extend([0u8; 8]);
        assert!(
            matches!(io::load_bytes(&b), Err(Error::Format { .. })),
            "{header}"
        );
    }
    let mut b = u64::MAX.to_le_bytes().to_vec();
    b.extend(b"{}");
    assert!(matches!(io::load_bytes(&b), Err(Error::Format { .. })));
}

// ---------------------------------------------------------------------------------------------
// .npy

/// A version-1 `.npy` exactly as numpy writes it: the dict padded with spaces to a 64-byte
/// boundary, ending in `\n`.
fn npy_v1(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut text = dict.as_bytes().to_vec();
    while !(10 + text.len() + 1).is_multiple_of(64) {
        text.push(b' ');
    }
    text.push(b'\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((text.len() as u16).to_le_bytes());
    b.extend(text);
    b.extend(data);
    b
}

fn le_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn npy_round_trip() {
    let dir = scratch("npy-round-trip");
    let path = dir.join("x.npy");
    for (_, t) in sample_tensors() {
        io::write_f32(&path, &t).unwrap();
        assert_eq!(io::read_f32(&path).unwrap(), t);
    }
    assert_eq!(entries(&dir), ["x.npy"]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn npy_reads_what_numpy_writes() {
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    let values = [1.0f32, 2.0, 3.0, -4.0, 0.5, 1e-7];
    let b = npy_v1(dict, &le_f32(&values));
    // 10 + 60 dict bytes + '\n' rounds up to numpy's 128-byte header.
    assert_eq!(&b[..10], b"\x93NUMPY\x01\x00\x76\x00");
    assert_eq!(b.len(), 128 + 24);
    assert_eq!(b[127], b'\n');

    let dir = scratch("npy-numpy");
    let path = dir.join("a.npy");
    fs::write(&path, &b).unwrap();
    let t = io::read_f32(&path).unwrap();
    assert_eq!(t.shape, [2, 3]);
    assert_eq!(t.data, values);
    fs::remove_dir_all(&dir).unwrap();

    // Scalars and 1-D arrays, the way numpy spells their shapes.
    let t = io::read_f32_bytes(&npy_v1(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
        &le_f32(&[9.0]),
    ))
    .unwrap();
    assert_eq!((t.shape.len(), t.data.as_slice()), (0, &[9.0f32][..]));
    let t = io::read_f32_bytes(&npy_v1(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
        &le_f32(&[1.0, 2.0, 3.0]),
    ))
    .unwrap();
    assert_eq!(t.shape, [3]);

    // float64 and float16 are converted.
    let f64: Vec<u8> = values
        .iter()
        .flat_map(|&x| (x as f64).to_le_bytes())
        .collect();
    let t = io::read_f32_bytes(&npy_v1(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }",
        &f64,
    ))
    .unwrap();
    assert_eq!(
        (t.shape.as_slice(), t.data.as_slice()),
        (&[3, 2][..], &values[..])
    );
    let f16: Vec<u8> = [1.0f32, -0.5]
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    let t = io::read_f32_bytes(&npy_v1(
        "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }",
        &f16,
    ))
    .unwrap();
    assert_eq!(t.data, [1.0, -0.5]);

    // Version 2 (4-byte header length).
    let text = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n";
    let mut b = b"\x93NUMPY\x02\x00".to_vec();
    b.extend((text.len() as u32).to_le_bytes());
    b.extend(text.as_bytes());
    b.extend(le_f32(&[5.0]));
    assert_eq!(io::read_f32_bytes(&b).unwrap().data, [5.0]);
}

#[test]
fn npy_fortran_order_and_other_dtypes_are_typed_errors() {
    let data = le_f32(&[0.0; 6]);
    let fortran = npy_v1(
        "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
        &data,
    );
    assert!(matches!(
        io::read_f32_bytes(&fortran),
        Err(Error::Format { .. })
    ));
    for descr in ["<i4", ">f4", "<u4", "|b1", "<c8", "|O"] {
        let width = match descr {
            "|b1" => 1,
            "<c8" | "|O" => 8,
            _ => 4,
        };
        let b = npy_v1(
            &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2, 3), }}"),
            &vec![0u8; 6 * width],
        );
        match io::read_f32_bytes(&b) {
            Err(Error::Dtype { dtype, .. }) => assert!(dtype.contains(descr), "{dtype}"),
            other => panic!("{descr}: {other:?}"),
        }
    }
    // A record dtype.
    let b = npy_v1(
        "{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, 'shape': (3,), }",
        &le_f32(&[0.0; 6]),
    );
    assert!(matches!(io::read_f32_bytes(&b), Err(Error::Dtype { .. })));
}

#[test]
fn npy_corrupt_files_never_panic() {
    let good = io::to_npy_bytes(&sample_tensors()[4].1).unwrap();
    assert!(io::read_f32_bytes(&good).is_ok());
    for len in 0..good.len() {
        assert!(
            matches!(io::read_f32_bytes(&good[..len]), Err(Error::Format { .. })),
            "truncated to {len}"
        );
    }
    let mut longer = good.clone();
    longer.extend([0u8; 4]);
    assert!(matches!(
        io::read_f32_bytes(&longer),
        Err(Error::Format { .. })
    ));

    let mut rng = Rng(0xfeed);
    let header_end = 10 + u16::from_le_bytes([good[8], good[9]]) as usize;
    for round in 0..6000 {
        let mut b = good.clone();
        // Half the rounds aim at the header, where the parser lives.
        let span = if round % 2 == 0 { header_end } else { b.len() };
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(span);
            if rng.below(2) == 0 {
                b[i] ^= 1 << rng.below(8);
            } else {
                b[i] = b" ()[]{},:'0123456789<>fFiTrue"[rng.below(29)];
            }
        }
        if let Ok(t) = io::read_f32_bytes(&b) {
            assert_eq!(t.len(), t.numel());
        }
    }
    for _ in 0..2000 {
        let len = rng.below(200);
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(io::read_f32_bytes(&b).is_err());
        // The same garbage behind a valid magic and version.
        let mut framed = b"\x93NUMPY".to_vec();
        framed.push(1 + rng.below(3) as u8);
        framed.push(0);
        framed.append(&mut b);
        let _ = io::read_f32_bytes(&framed);
    }
}

// ---------------------------------------------------------------------------------------------
// atomic saves

#[test]
fn saves_are_atomic() {
    let dir = scratch("atomic");
    let st = dir.join("m.safetensors");
    let npy = dir.join("m.npy");
    let tensors = sample_tensors();
    let none = BTreeMap::new();

    // Overwriting leaves exactly the complete new file.
    io::save(&st, &tensors[..1], &none).unwrap();
    io::save(&st, &tensors, &none).unwrap();
    assert_eq!(io::load(&st).unwrap().0.len(), tensors.len());
    io::write_f32(&npy, &tensors[0].1).unwrap();
    io::write_f32(&npy, &tensors[4].1).unwrap();
    assert_eq!(io::read_f32(&npy).unwrap(), tensors[4].1);
    assert_eq!(entries(&dir), ["m.npy", "m.safetensors"]);

    // A failed save changes nothing and leaves no temporary file.
    let before_st = fs::read(&st).unwrap();
    let before_npy = fs::read(&npy).unwrap();
    let bad = HostTensor {
        shape: vec![2, 2],
        data: vec![1.0; 3],
    };
    assert!(matches!(
        io::save(&st, &[("bad".into(), bad.clone())], &none),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        io::write_f32(&npy, &bad),
        Err(Error::Shape { .. })
    ));
    let dup = vec![tensors[0].clone(), tensors[0].clone()];
    assert!(io::save(&st, &dup, &none).is_err());
    assert_eq!(fs::read(&st).unwrap(), before_st);
    assert_eq!(fs::read(&npy).unwrap(), before_npy);

    // The rename fails when the target is a directory: the temp file is removed.
    let sub = dir.join("sub");
    fs::create_dir(&sub).unwrap();
    fs::write(sub.join("inside"), b"x").unwrap();
    assert!(matches!(
        io::save(&sub, &tensors, &none),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        io::write_f32(&sub, &tensors[0].1),
        Err(Error::Io { .. })
    ));
    assert_eq!(entries(&dir), ["m.npy", "m.safetensors", "sub"]);
    assert_eq!(entries(&sub), ["inside"]);

    // A missing directory is an I/O error, and creates nothing.
    assert!(matches!(
        io::save(&dir.join("no/such/dir/m.safetensors"), &tensors, &none),
        Err(Error::Io { .. })
    ));
    assert_eq!(entries(&dir), ["m.npy", "m.safetensors", "sub"]);
    fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// state_dict inference

fn state_dict(cfg: &RnnConfig, prefix: &str) -> (BTreeMap<String, HostTensor>, Vec<f32>) {
    let mut rng = Rng(42);
    let flat: Vec<f32> = (0..ParamLayout::new(cfg).total)
        .map(|_| rng.f32())
        .collect();
    let sd = state_dict_from_params(cfg, &flat, prefix)
        .unwrap()
        .into_iter()
        .collect();
    (sd, flat)
}

fn infer(
    sd: &BTreeMap<String, HostTensor>,
    prefix: &str,
    nl: Option<CellKind>,
) -> recur::Result<(RnnConfig, Vec<f32>)> {
    config_from_state_dict(sd, prefix, nl, &BTreeMap::new())
}

#[test]
fn state_dict_infers_every_cell_kind() {
    for cell in [CellKind::Lstm, CellKind::Gru, CellKind::RnnTanh] {
        for bidir in [false, true] {
            for bias in [true, false] {
                for layers in [1, 3] {
                    let cfg = RnnConfig::new(cell, 5, 6)
                        .layers(layers)
                        .bidirectional(bidir)
                        .bias(bias);
                    let (sd, flat) = state_dict(&cfg, "");
                    let (got, got_flat) = infer(&sd, "", None).unwrap();
                    assert_eq!(got, cfg);
                    assert_eq!(got_flat, flat);
                }
            }
        }
    }
}

#[test]
fn state_dict_names_and_shapes_are_pytorchs() {
    let cfg = RnnConfig::new(CellKind::Lstm, 3, 4)
        .layers(2)
        .bidirectional(true);
    let (sd, _) = state_dict(&cfg, "lstm.");
    let shape = |n: &str| sd[n].shape.clone();
    assert_eq!(sd.len(), 16);
    assert_eq!(shape("lstm.weight_ih_l0"), [16, 3]);
    assert_eq!(shape("lstm.weight_hh_l0_reverse"), [16, 4]);
    assert_eq!(shape("lstm.weight_ih_l1"), [16, 8]);
    assert_eq!(shape("lstm.bias_hh_l1_reverse"), [16]);
    let gru = RnnConfig::new(CellKind::Gru, 2, 5).bias(false);
    let (sd, _) = state_dict(&gru, "");
    assert_eq!(
        sd.keys().collect::<Vec<_>>(),
        ["weight_hh_l0", "weight_ih_l0"]
    );
    assert_eq!(sd["weight_ih_l0"].shape, [15, 2]);
}

#[test]
fn state_dict_prefix_selects_one_module() {
    let lstm = RnnConfig::new(CellKind::Lstm, 4, 3);
    let gru = RnnConfig::new(CellKind::Gru, 3, 2).layers(2);
    let (mut sd, lstm_flat) = state_dict(&lstm, "encoder.rnn.");
    let (g, gru_flat) = state_dict(&gru, "decoder.rnn.");
    sd.extend(g);
    sd.insert(
        "fc.weight".into(),
        HostTensor::new(vec![2, 3], vec![0.0; 6]).unwrap(),
    );
    sd.insert(
        "encoder.rnn.extra_buffer".into(),
        HostTensor::new(vec![1], vec![0.0]).unwrap(),
    );
    let (c, f) = infer(&sd, "encoder.rnn.", None).unwrap();
    assert_eq!((c, f), (lstm, lstm_flat));
    let (c, f) = infer(&sd, "decoder.rnn.", None).unwrap();
    assert_eq!((c, f), (gru, gru_flat));

    // No RNN tensors under the prefix: the error lists names and suggests prefixes.
    match infer(&sd, "", None) {
        Err(Error::InvalidConfig(msg)) => {
            assert!(msg.contains("decoder.rnn.bias_hh_l0"), "{msg}");
            assert!(msg.contains("\"encoder.rnn.\""), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    match infer(&sd, "encoder.rnn", None) {
        Err(Error::InvalidConfig(msg)) => assert!(msg.contains("encoder.rnn."), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        infer(&BTreeMap::new(), "", None),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn state_dict_missing_tensor() {
    let cfg = RnnConfig::new(CellKind::Gru, 4, 3)
        .layers(2)
        .bidirectional(true);
    for name in [
        "rnn.weight_hh_l1_reverse",
        "rnn.bias_ih_l1",
        "rnn.weight_hh_l0",
        "rnn.weight_ih_l0",
        "rnn.weight_ih_l1",
    ] {
        let (mut sd, _) = state_dict(&cfg, "rnn.");
        sd.remove(name).unwrap();
        match infer(&sd, "rnn.", None) {
            // Removing weight_ih_l1 makes a one-layer GRU with left-over layer-1 tensors.
            Err(Error::UnexpectedTensor(n)) if name == "rnn.weight_ih_l1" => {
                assert!(n.starts_with("rnn.") && n.contains("_l1"), "{n}")
            }
            Err(Error::MissingTensor(n)) => assert_eq!(n, name),
            other => panic!("{name}: {other:?}"),
        }
    }
    // A gap in the layers.
    let (mut sd, _) = state_dict(&cfg.clone().layers(3), "");
    for n in [
        "weight_ih_l1",
        "weight_hh_l1",
        "bias_ih_l1",
        "bias_hh_l1",
        "weight_ih_l1_reverse",
    ] {
        sd.remove(n);
    }
    assert!(matches!(infer(&sd, "", None), Err(Error::MissingTensor(n)) if n == "weight_ih_l1"));
}

#[test]
fn state_dict_wrong_shape() {
    let cfg = RnnConfig::new(CellKind::Lstm, 4, 3).layers(2);
    let (sd0, _) = state_dict(&cfg, "");

    let mut sd = sd0.clone();
    sd.insert(
        "bias_hh_l1".into(),
        HostTensor::new(vec![11], vec![0.0; 11]).unwrap(),
    );
    match infer(&sd, "", None) {
        Err(Error::Shape {
            what,
            expected,
            got,
        }) => {
            assert_eq!(what, "bias_hh_l1");
            assert_eq!((expected, got), (vec![12], vec![11]));
        }
        other => panic!("{other:?}"),
    }

    // Layer 1 reads H features, not I.
    let mut sd = sd0.clone();
    sd.insert(
        "weight_ih_l1".into(),
        HostTensor::new(vec![12, 4], vec![0.0; 48]).unwrap(),
    );
    assert!(
        matches!(infer(&sd, "", None), Err(Error::Shape { what, .. }) if what == "weight_ih_l1")
    );

    // Rows that are no multiple of H, and a vector where a matrix belongs.
    let mut sd = sd0.clone();
    sd.insert(
        "weight_ih_l0".into(),
        HostTensor::new(vec![10, 4], vec![0.0; 40]).unwrap(),
    );
    assert!(matches!(infer(&sd, "", None), Err(Error::InvalidConfig(_))));
    let mut sd = sd0.clone();
    sd.insert(
        "weight_hh_l0".into(),
        HostTensor::new(vec![36], vec![0.0; 36]).unwrap(),
    );
    assert!(matches!(infer(&sd, "", None), Err(Error::InvalidConfig(_))));
    let mut sd = sd0.clone();
    sd.insert(
        "weight_hh_l0".into(),
        HostTensor::new(vec![12, 0], vec![]).unwrap(),
    );
    assert!(matches!(infer(&sd, "", None), Err(Error::InvalidConfig(_))));

    // Data that does not fill the shape (the fields are public).
    let mut sd = sd0;
    sd.get_mut("bias_ih_l0").unwrap().data.pop();
    assert!(matches!(infer(&sd, "", None), Err(Error::Shape { .. })));
}

#[test]
fn state_dict_unexpected_tensor() {
    let cfg = RnnConfig::new(CellKind::RnnTanh, 2, 3);
    for extra in [
        "weight_ih_l0_reverse2",
        "bias_xx_l0",
        "weight_ih_l01",
        "bias_hh_l3",
    ] {
        let (mut sd, _) = state_dict(&cfg, "m.");
        sd.insert(
            format!("m.{extra}"),
            HostTensor::new(vec![3], vec![0.0; 3]).unwrap(),
        );
        match infer(&sd, "m.", None) {
            Err(Error::UnexpectedTensor(n)) => assert_eq!(n, format!("m.{extra}")),
            // weight_ih_l01 counts as a layer, so layer 1 is missing.
            Err(Error::MissingTensor(n)) if extra == "weight_ih_l01" => {
                assert_eq!(n, "m.weight_ih_l1")
            }
            other => panic!("{extra}: {other:?}"),
        }
    }
    // Tensors elsewhere, or not named like RNN parameters, are ignored.
    let (mut sd, _) = state_dict(&cfg, "m.");
    for n in [
        "m.weight",
        "m.sub.weight_ih_l0",
        "other.bias_ih_l5",
        "m.running_mean_l0",
    ] {
        sd.insert(n.into(), HostTensor::new(vec![1], vec![0.0]).unwrap());
    }
    assert!(infer(&sd, "m.", None).is_ok());
}

#[test]
fn state_dict_infers_lstm_projection() {
    // weight_hr_l{k} [P, H] makes weight_hh [4H, P] and layer k>0 input D*P.
    let cfg = RnnConfig::new(CellKind::Lstm, 3, 5)
        .layers(2)
        .bidirectional(true)
        .proj_size(2);
    let (sd, flat) = state_dict(&cfg, "");
    assert_eq!(sd["weight_hh_l0"].shape, vec![20, 2]);
    assert_eq!(sd["weight_ih_l1"].shape, vec![20, 4]);
    assert_eq!(sd["weight_hr_l1_reverse"].shape, vec![2, 5]);
    let (got, got_flat) = infer(&sd, "", None).unwrap();
    assert_eq!(got, cfg);
    assert_eq!(got_flat, flat);

    // A weight_hr beside a weight_hh that is [4H, H] is a shape error, not a silent misread.
    let plain = RnnConfig::new(CellKind::Lstm, 3, 4);
    let (mut sd, _) = state_dict(&plain, "");
    sd.insert(
        "weight_hr_l0".into(),
        HostTensor::new(vec![2, 4], vec![0.0; 8]).unwrap(),
    );
    match infer(&sd, "", None) {
        Err(Error::Shape { what, .. }) => assert!(what.contains("weight_hh_l0"), "{what}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn state_dict_nonlinearity_from_flag_then_metadata_then_tanh() {
    let cfg = RnnConfig::new(CellKind::RnnRelu, 2, 3).layers(2);
    let (sd, flat) = state_dict(&cfg, "");
    let meta = |v: &str| {
        let mut m = BTreeMap::new();
        m.insert("nonlinearity".to_string(), v.to_string());
        m
    };
    let cell = |nl: Option<CellKind>, m: &BTreeMap<String, String>| {
        config_from_state_dict(&sd, "", nl, m).map(|(c, _)| c.cell)
    };
    let none = BTreeMap::new();
    // Default tanh.
    assert_eq!(cell(None, &none).unwrap(), CellKind::RnnTanh);
    // Metadata.
    assert_eq!(cell(None, &meta("relu")).unwrap(), CellKind::RnnRelu);
    assert_eq!(cell(None, &meta("tanh")).unwrap(), CellKind::RnnTanh);
    assert!(matches!(
        cell(None, &meta("sigmoid")),
        Err(Error::InvalidConfig(_))
    ));
    // The flag wins over metadata.
    assert_eq!(
        cell(Some(CellKind::RnnTanh), &meta("relu")).unwrap(),
        CellKind::RnnTanh
    );
    assert_eq!(
        cell(Some(CellKind::RnnRelu), &meta("tanh")).unwrap(),
        CellKind::RnnRelu
    );
    // A flag that contradicts the shapes.
    assert!(matches!(
        cell(Some(CellKind::Lstm), &none),
        Err(Error::InvalidConfig(_))
    ));
    // state_dict_metadata records the nonlinearity so a save/load round trip keeps it.
    let (c, f) = config_from_state_dict(&sd, "", None, &state_dict_metadata(&cfg)).unwrap();
    assert_eq!((c, f), (cfg, flat));

    // Gated cells ignore the metadata key; a matching flag is fine, a wrong one is not.
    let lstm = RnnConfig::new(CellKind::Lstm, 2, 3);
    let (sd, _) = state_dict(&lstm, "");
    assert!(state_dict_metadata(&lstm).is_empty());
    let ok = config_from_state_dict(&sd, "", Some(CellKind::Lstm), &meta("relu")).unwrap();
    assert_eq!(ok.0, lstm);
    for wrong in [CellKind::Gru, CellKind::RnnRelu, CellKind::RnnTanh] {
        assert!(matches!(
            config_from_state_dict(&sd, "", Some(wrong), &none),
            Err(Error::InvalidConfig(_))
        ));
    }
}

#[test]
fn state_dict_round_trips_through_a_safetensors_file() {
    let dir = scratch("sd-file");
    let path = dir.join("gru.safetensors");
    let cfg = RnnConfig::new(CellKind::RnnRelu, 7, 5)
        .layers(2)
        .bidirectional(true);
    let mut rng = Rng(3);
    let flat: Vec<f32> = (0..ParamLayout::new(&cfg).total)
        .map(|_| rng.f32())
        .collect();
    let sd = state_dict_from_params(&cfg, &flat, "rnn.").unwrap();
    io::save(&path, &sd, &state_dict_metadata(&cfg)).unwrap();
    let (tensors, meta) = io::load(&path).unwrap();
    let (got, got_flat) = config_from_state_dict(&tensors, "rnn.", None, &meta).unwrap();
    assert_eq!(got, cfg);
    assert_eq!(got_flat, flat);
    assert!(matches!(
        state_dict_from_params(&cfg, &flat[1..], "rnn."),
        Err(Error::Shape { .. })
    ));
    fs::remove_dir_all(&dir).unwrap();
}

/// A small file that claims huge sizes: refused on the shapes before anything the size of
/// the claimed model is allocated (here it would be 16 GiB).
#[test]
fn state_dict_with_huge_claimed_sizes_is_refused_without_allocating() {
    let mut sd = BTreeMap::new();
    sd.insert(
        "weight_ih_l0".to_string(),
        HostTensor::new(vec![65536, 1], vec![0.0; 65536]).unwrap(),
    );
    sd.insert(
        "weight_hh_l0".to_string(),
        HostTensor::new(vec![1, 65536], vec![0.0; 65536]).unwrap(),
    );
    match config_from_state_dict(&sd, "", None, &BTreeMap::new()) {
        Err(Error::Shape { what, .. }) => assert!(what.contains("weight_hh_l0"), "{what}"),
        other => panic!("{:?}", other.map(|(c, _)| c)),
    }
    // Layer indices are plain decimal: `l01` is not layer 1.
    sd.insert(
        "weight_ih_l01".to_string(),
        HostTensor::new(vec![1], vec![0.0]).unwrap(),
    );
    assert!(config_from_state_dict(&sd, "", None, &BTreeMap::new()).is_err());
}

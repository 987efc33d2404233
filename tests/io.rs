//! I/O: safetensors round trips, foreign dtypes and corrupt files; every reader (safetensors,
//! `.npy`, checkpoints) refusing endless and oversized files; atomic saves. `.npy` files are
//! in tests/npy.rs, state_dict inference in tests/state_dict.rs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use recur::io::{self, HostTensor};
use recur::Error;

use safetensors::tensor::{serialize, Dtype, TensorView};

#[path = "common/files.rs"]
mod files;

use files::{entries, sample_tensors, scratch, Rng};

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

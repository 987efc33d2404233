//! `.npy` files: round trips, what numpy writes, Fortran order and other dtypes as typed
//! errors, corrupt files.

use std::fs;

use recur::io;
use recur::Error;

#[path = "common/files.rs"]
mod files;

use files::{entries, sample_tensors, scratch, Rng};

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

//! Host tensors with shapes and errors in the caller's terms (issue 11).

mod common;

use common::gpu;
use recur::{CellKind, Error, HostTensor, LoadOptions, ParamLayout, Rnn, RnnConfig};

/// PyTorch takes an LSTM's state as the pair (h0, c0): one without the other is refused,
/// naming what is missing.
#[test]
fn an_lstm_refuses_h0_without_c0_and_c0_without_h0() {
    let Some(gpu) = gpu() else { return };
    let cfg = RnnConfig::new(CellKind::Lstm, 3, 4).layers(2);
    let rnn = Rnn::new(&gpu, cfg.clone(), &vec![0.1; ParamLayout::new(&cfg).total]).unwrap();
    let x = gpu.tensor("x", &[2, 1, 3], &[0.5; 6]).unwrap();
    let h0 = gpu.zeros("h0", &[2, 1, 4]).unwrap();
    let c0 = gpu.zeros("c0", &[2, 1, 4]).unwrap();
    match rnn.forward(&gpu, &x, Some(&h0), None) {
        Err(Error::InvalidConfig(m)) => assert!(m.contains("h0 without c0"), "{m}"),
        other => panic!("{other:?}"),
    }
    match rnn.forward(&gpu, &x, None, Some(&c0)) {
        Err(Error::InvalidConfig(m)) => assert!(m.contains("c0 without h0"), "{m}"),
        other => panic!("{other:?}"),
    }
    let both = rnn.forward(&gpu, &x, Some(&h0), Some(&c0)).unwrap();
    let none = rnn.forward(&gpu, &x, None, None).unwrap();
    assert_eq!(gpu.read(&both.y).unwrap(), gpu.read(&none.y).unwrap());
    // A GRU has no c0; h0 alone is its whole state.
    let gcfg = RnnConfig::new(CellKind::Gru, 3, 4);
    let gru = Rnn::new(
        &gpu,
        gcfg.clone(),
        &vec![0.1; ParamLayout::new(&gcfg).total],
    )
    .unwrap();
    let gh0 = gpu.zeros("h0", &[1, 1, 4]).unwrap();
    gru.forward(&gpu, &x, Some(&gh0), None).unwrap();
}

/// Shapes go up and come back; a wrong size is reported as element counts on both sides, or
/// as shapes on both sides, never one of each.
#[test]
fn host_tensors_keep_their_shapes_and_errors_compare_like_with_like() {
    let Some(gpu) = gpu() else { return };
    let x = HostTensor::new(vec![4, 2, 3], (0..24).map(|i| i as f32).collect()).unwrap();
    let t = gpu.upload(&x).unwrap();
    assert_eq!(t.shape, [4, 2, 3]);
    assert_eq!(gpu.download(&t).unwrap(), x);
    let mut into = HostTensor::zeros(vec![4, 2, 3]).unwrap();
    gpu.read_into(&t, &mut into).unwrap();
    assert_eq!(into, x);
    let mut wrong = HostTensor::zeros(vec![4, 6]).unwrap();
    let e = gpu.read_into(&t, &mut wrong).unwrap_err().to_string();
    assert!(e.contains("expected [4, 2, 3], got [4, 6]"), "{e}");
    let e = HostTensor::new(vec![20, 4, 15], vec![0.0; 1280])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[20, 4, 15]") && e.contains("expected [1200], got [1280]"),
        "{e}"
    );
}

/// `Rnn::load` with options reads what `load_safetensors` reads, plus the layout.
#[test]
fn rnn_load_with_options_matches_the_positional_loader() {
    let Some(gpu) = gpu() else { return };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rnn_relu.safetensors");
    let old = Rnn::load_safetensors(&gpu, &path, "", None).unwrap();
    let new = Rnn::load(&gpu, &path, &LoadOptions::new()).unwrap();
    assert_eq!(old.cfg, new.cfg);
    assert_eq!(old.cfg.cell, CellKind::RnnRelu);
    assert_eq!(
        gpu.read(&old.params).unwrap(),
        gpu.read(&new.params).unwrap()
    );
    let bf = Rnn::load(&gpu, &path, &LoadOptions::new().batch_first(true)).unwrap();
    assert!(bf.cfg.batch_first);
    match Rnn::load(&gpu, &path, &LoadOptions::new().prefix("lstm.")) {
        Err(Error::InvalidConfig(_)) | Err(Error::MissingTensor(_)) => {}
        other => panic!("{other:?}"),
    }
}

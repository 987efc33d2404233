//! Variable-length batches (`Rnn::record_train_packed`) against the f64 reference run on
//! each row alone over its own length: rows are independent, so a padded batch with lengths
//! must give each row's own outputs (zero past its length), its own final states, and the sum
//! over rows of the parameter gradients, with zero gradients at padded positions. Both kernel
//! families, every cell, 2 layers, bidirectional, batch-first, unsorted lengths. And the same
//! against PyTorch's `pack_padded_sequence` / `pad_packed_sequence` (tests/fixtures/packed,
//! made by scripts/make_packed_fixtures.py), outputs and gradients.

mod common;

use common::layout::swap01;
use common::{assert_close, bits, f64s, gpu};
use recur::rng::Rng;
use recur::rnn::StateGrads;
use recur::{reference, CellKind, Gpu, ParamLayout, Recorder, Rnn, RnnConfig};

/// Row `r` of a `[outer, batch, f]` tensor, over its first `outer_len` entries of axis 0.
fn row(v: &[f32], outer_len: usize, batch: usize, f: usize, r: usize) -> Vec<f64> {
    (0..outer_len)
        .flat_map(|o| v[(o * batch + r) * f..][..f].iter().map(|&x| f64::from(x)))
        .collect()
}

/// Writes `src` (`[outer, 1, f]`) into row `r` of `dst` (`[outer_total, batch, f]`).
fn put_row(dst: &mut [f64], src: &[f64], batch: usize, f: usize, r: usize) {
    for (o, chunk) in src.chunks(f).enumerate() {
        dst[(o * batch + r) * f..][..f].copy_from_slice(chunk);
    }
}

fn check(gpu: &Gpu, cfg: &RnnConfig, lengths: &[usize], seed: u64) {
    let (t, b, i) = (
        *lengths.iter().max().unwrap() + 1,
        lengths.len(),
        cfg.input_size,
    );
    let name = format!(
        "{cfg:?} lengths {lengths:?} T={t} direct={}",
        gpu.prefers_direct_kernels()
    );
    let mut rng = Rng::new(seed);
    let layout = ParamLayout::new(cfg);
    let k = 1.0 / (cfg.hidden_size as f32).sqrt();
    let params = rng.vec_uniform_f32(layout.total, -k, k);
    let (h, d, l) = (cfg.hidden_size, cfg.num_directions(), cfg.num_layers);
    // h0/hn are P wide with an LSTM projection, c0/cn H wide.
    let oh = cfg.out_hidden();
    let ow = d * oh;
    let lstm = cfg.cell == CellKind::Lstm;
    let x_tm = rng.vec_uniform_f32(t * b * i, -1.0, 1.0);
    let h0 = rng.vec_uniform_f32(l * d * b * oh, -0.5, 0.5);
    let c0 = rng.vec_uniform_f32(l * d * b * h, -0.5, 0.5);
    let dy_tm = rng.vec_uniform_f32(t * b * ow, -1.0, 1.0);
    let dhn = rng.vec_uniform_f32(l * d * b * oh, -1.0, 1.0);
    let dcn = rng.vec_uniform_f32(l * d * b * h, -1.0, 1.0);

    // The GPU: one padded batch with lengths, forward and backward in one submission.
    let rnn = Rnn::new(gpu, cfg.clone(), &params).unwrap();
    let bf = cfg.batch_first;
    let (x_in, x_shape, dy_in, y_shape) = if bf {
        (
            swap01(&x_tm, t, b, i),
            [b, t, i],
            swap01(&dy_tm, t, b, ow),
            [b, t, ow],
        )
    } else {
        (x_tm.clone(), [t, b, i], dy_tm.clone(), [t, b, ow])
    };
    let (state, c_state) = ([l * d, b, oh], [l * d, b, h]);
    let x = gpu.tensor("x", &x_shape, &x_in).unwrap();
    let th0 = gpu.tensor("h0", &state, &h0).unwrap();
    let tc0 = gpu.tensor("c0", &c_state, &c0).unwrap();
    let dy = gpu.tensor("dy", &y_shape, &dy_in).unwrap();
    let tdhn = gpu.tensor("dhn", &state, &dhn).unwrap();
    let tdcn = gpu.tensor("dcn", &c_state, &dcn).unwrap();
    let c0_opt = lstm.then_some(&tc0);
    // Forward and backward in one submission, with dX (`record_backward`) or without
    // (`record_weight_backward`).
    let record = |with_dx: bool| {
        let mut rec = Recorder::new(gpu);
        let (out, saved) = rnn
            .record_train_packed(&mut rec, &x, lengths, Some(&th0), c0_opt)
            .unwrap();
        let (dhn, dcn) = (Some(&tdhn), lstm.then_some(&tdcn));
        let (dx, state) = if with_dx {
            let g = rnn
                .record_backward(&mut rec, &saved, &dy, dhn, dcn, false)
                .unwrap();
            let state = StateGrads {
                dh0: g.dh0,
                dc0: g.dc0,
            };
            (Some(g.dx), state)
        } else {
            let state = rnn
                .record_weight_backward(&mut rec, &saved, &dy, dhn, dcn, false)
                .unwrap();
            (None, state)
        };
        rec.run().unwrap();
        (out, dx, state)
    };
    let (out, dx, grads) = record(true);

    // The reference: each row alone over its own length, composed back into a batch.
    let p64 = f64s(&params);
    let mut want_y = vec![0.0; t * b * ow];
    let mut want_hn = vec![0.0; l * d * b * oh];
    let mut want_cn = vec![0.0; l * d * b * h];
    let mut want_dx = vec![0.0; t * b * i];
    let mut want_dh0 = vec![0.0; l * d * b * oh];
    let mut want_dc0 = vec![0.0; l * d * b * h];
    let mut want_dp = vec![0.0; layout.total];
    for (r, &len) in lengths.iter().enumerate() {
        let xr = row(&x_tm, len, b, i, r);
        let h0r = row(&h0, l * d, b, oh, r);
        let c0r = row(&c0, l * d, b, h, r);
        let fwd =
            reference::rnn_forward(cfg, &p64, &xr, len, 1, Some(&h0r), lstm.then_some(&c0r[..]));
        put_row(&mut want_y, &fwd.y, b, ow, r);
        put_row(&mut want_hn, &fwd.hn, b, oh, r);
        if let Some(cn) = &fwd.cn {
            put_row(&mut want_cn, cn, b, h, r);
        }
        let g = reference::rnn_backward(
            cfg,
            &p64,
            &xr,
            len,
            1,
            Some(&h0r),
            lstm.then_some(&c0r[..]),
            &fwd,
            &row(&dy_tm, len, b, ow, r),
            Some(&row(&dhn, l * d, b, oh, r)),
            lstm.then(|| row(&dcn, l * d, b, h, r)).as_deref(),
        );
        put_row(&mut want_dx, &g.dx, b, i, r);
        put_row(&mut want_dh0, &g.dh0, b, oh, r);
        if let Some(dc0) = &g.dc0 {
            put_row(&mut want_dc0, dc0, b, h, r);
        }
        for (w, v) in want_dp.iter_mut().zip(&g.dparams) {
            *w += v;
        }
    }
    let mut y = gpu.read(&out.y).unwrap();
    let mut dx = gpu.read(&dx.expect("dX asked for")).unwrap();
    if bf {
        y = swap01(&y, b, t, ow);
        dx = swap01(&dx, b, t, i);
    }
    assert_close(&format!("{name}: y"), &y, &want_y, 1e-5);
    assert_close(
        &format!("{name}: hn"),
        &gpu.read(&out.hn).unwrap(),
        &want_hn,
        1e-5,
    );
    if let Some(cn) = &out.cn {
        assert_close(
            &format!("{name}: cn"),
            &gpu.read(cn).unwrap(),
            &want_cn,
            1e-5,
        );
    }
    assert_close(&format!("{name}: dx"), &dx, &want_dx, 1e-4);
    assert_close(
        &format!("{name}: dh0"),
        &gpu.read(&grads.dh0).unwrap(),
        &want_dh0,
        1e-4,
    );
    if let Some(dc0) = &grads.dc0 {
        assert_close(
            &format!("{name}: dc0"),
            &gpu.read(dc0).unwrap(),
            &want_dc0,
            1e-4,
        );
    }
    let dp = gpu.read(&rnn.grads).unwrap();
    for e in &layout.entries {
        assert_close(
            &format!("{name}: grad {}", e.name),
            &dp[e.range()],
            &want_dp[e.range()],
            1e-4,
        );
    }
    // Without dX (`record_weight_backward`): the same gradients and dh0/dc0, bit for bit.
    let (_, no_dx, state) = record(false);
    assert!(no_dx.is_none());
    assert_eq!(
        bits(&gpu.read(&rnn.grads).unwrap()),
        bits(&dp),
        "{name}: grads without dX"
    );
    let pairs = [
        (Some(&state.dh0), Some(&grads.dh0)),
        (state.dc0.as_ref(), grads.dc0.as_ref()),
    ];
    for (got, want) in pairs {
        assert_eq!(
            got.is_some(),
            want.is_some(),
            "{name}: state gradients without dX"
        );
        if let (Some(got), Some(want)) = (got, want) {
            let (got, want) = (gpu.read(got).unwrap(), gpu.read(want).unwrap());
            assert_eq!(
                bits(&got),
                bits(&want),
                "{name}: state gradients without dX"
            );
        }
    }
    // Padded positions are exactly zero, in the outputs and in dx.
    for (r, &len) in lengths.iter().enumerate() {
        for tt in len..t {
            assert!(
                y[(tt * b + r) * ow..][..ow].iter().all(|&v| v == 0.0),
                "{name}: y pad"
            );
            assert!(
                dx[(tt * b + r) * i..][..i].iter().all(|&v| v == 0.0),
                "{name}: dx pad"
            );
        }
    }
}

#[test]
fn packed_batches_should_match_each_row_run_alone() {
    let Some(mut gpu) = gpu() else { return };
    // Unsorted, with ties and a row of length 1; T is one more than the longest (a step no
    // row reaches). H = 8 takes the vec4 kernels on CPU adapters, 5 the scalar ones.
    let lengths = [3, 5, 1, 5, 2];
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        for (s, cell) in [CellKind::Lstm, CellKind::Gru, CellKind::RnnTanh]
            .into_iter()
            .enumerate()
        {
            let cfgs = [
                RnnConfig::new(cell, 3, 8).layers(2).bidirectional(true),
                RnnConfig::new(cell, 4, 5)
                    .batch_first(true)
                    .bidirectional(true),
                RnnConfig::new(cell, 2, 12),
            ];
            for (c, cfg) in cfgs.iter().enumerate() {
                check(&gpu, cfg, &lengths, (10 * s + c) as u64);
            }
        }
        // LSTM projections (P < H): 2 layers bidirectional, and batch-first.
        check(
            &gpu,
            &RnnConfig::new(CellKind::Lstm, 3, 8)
                .proj_size(5)
                .layers(2)
                .bidirectional(true),
            &lengths,
            50,
        );
        check(
            &gpu,
            &RnnConfig::new(CellKind::Lstm, 4, 6)
                .proj_size(3)
                .batch_first(true),
            &lengths,
            51,
        );
        // Sequences of 16 steps and more (T = 19): W_hh resident on adapters with 8-lane
        // subgroups, against rows run alone in fewer steps (other kernels).
        for (s, cell) in [CellKind::Lstm, CellKind::Gru].into_iter().enumerate() {
            let cfg = RnnConfig::new(cell, 3, 8).bidirectional(true);
            check(&gpu, &cfg, &[17, 4, 18, 1, 16], 60 + s as u64);
        }
        // Sorted lengths (no reordering on the device), one row.
        check(&gpu, &RnnConfig::new(CellKind::Lstm, 3, 8), &[4, 4, 2], 40);
        check(
            &gpu,
            &RnnConfig::new(CellKind::Gru, 3, 8).bidirectional(true),
            &[2],
            41,
        );
    }
}

#[test]
fn packed_batches_should_refuse_bad_lengths() {
    let Some(gpu) = gpu() else { return };
    let cfg = RnnConfig::new(CellKind::Lstm, 3, 8);
    let rnn = Rnn::new(&gpu, cfg.clone(), &vec![0.0; ParamLayout::new(&cfg).total]).unwrap();
    let x = gpu.zeros("x", &[4, 2, 3]).unwrap();
    for bad in [&[1, 5][..], &[0, 2], &[2]] {
        assert!(
            rnn.forward_packed(&gpu, &x, bad, None, None).is_err(),
            "lengths {bad:?} accepted"
        );
    }
}

/// One fixture of tests/fixtures/packed (scripts/make_packed_fixtures.py: PyTorch's
/// `pack_padded_sequence(enforce_sorted=False)` / `pad_packed_sequence`, forward and
/// backward of `sum(y*dy) + sum(hn*dhn) + sum(cn*dcn)`): outputs to 1e-5, gradients to 1e-4.
fn check_packed_fixture(gpu: &Gpu, path: &std::path::Path) {
    let name = path.display().to_string();
    let (tensors, meta) = recur::io::load(path).unwrap();
    let (mut cfg, flat) =
        recur::rnn::state_dict::config_from_state_dict(&tensors, "", None, &meta).unwrap();
    cfg.batch_first = meta.get("batch_first").map(String::as_str) == Some("1");
    let lengths: Vec<usize> = meta["lengths"]
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let rnn = Rnn::new(gpu, cfg.clone(), &flat).unwrap();
    let up = |k: &str| {
        tensors.get(k).map(|t| {
            gpu.tensor(k, &t.shape, &t.data)
                .unwrap_or_else(|e| panic!("{name}: {k}: {e}"))
        })
    };
    let want = |k: &str| f64s(&tensors[k].data);
    let (x, h0, c0) = (up("input").unwrap(), up("h0"), up("c0"));
    let (dy, dhn, dcn) = (up("grad_output").unwrap(), up("grad_hn"), up("grad_cn"));
    let mut rec = Recorder::new(gpu);
    let (out, saved) = rnn
        .record_train_packed(&mut rec, &x, &lengths, h0.as_ref(), c0.as_ref())
        .unwrap();
    let grads = rnn
        .record_backward(&mut rec, &saved, &dy, dhn.as_ref(), dcn.as_ref(), false)
        .unwrap();
    rec.run().unwrap();
    let read = |t: &recur::Tensor| gpu.read(t).unwrap();
    assert_close(
        &format!("{name}: output"),
        &read(&out.y),
        &want("output"),
        1e-5,
    );
    assert_close(&format!("{name}: hn"), &read(&out.hn), &want("hn"), 1e-5);
    if let Some(cn) = &out.cn {
        assert_close(&format!("{name}: cn"), &read(cn), &want("cn"), 1e-5);
    }
    let dp = read(&rnn.grads);
    for e in &rnn.layout.entries {
        let k = format!("grad.{}", e.name);
        assert_close(&format!("{name}: {k}"), &dp[e.range()], &want(&k), 1e-4);
    }
    assert_close(
        &format!("{name}: grad.input"),
        &read(&grads.dx),
        &want("grad.input"),
        1e-4,
    );
    if h0.is_some() {
        assert_close(
            &format!("{name}: grad.h0"),
            &read(&grads.dh0),
            &want("grad.h0"),
            1e-4,
        );
    }
    if let (Some(_), Some(dc0)) = (&c0, &grads.dc0) {
        assert_close(
            &format!("{name}: grad.c0"),
            &read(dc0),
            &want("grad.c0"),
            1e-4,
        );
    }
    // Inference gives the same outputs.
    let inf = rnn
        .forward_packed(gpu, &x, &lengths, h0.as_ref(), c0.as_ref())
        .unwrap();
    assert_close(
        &format!("{name}: output (inference)"),
        &read(&inf.y),
        &want("output"),
        1e-5,
    );
}

#[test]
fn packed_batches_should_match_pytorch_pack_padded_sequence() {
    let Some(mut gpu) = gpu() else { return };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packed");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "fixtures missing in {}", dir.display());
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        for f in &files {
            check_packed_fixture(&gpu, f);
        }
    }
}

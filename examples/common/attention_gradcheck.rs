//! `translate_attention`'s gradient check (a child module of the example, so it reaches the
//! model's private pieces).

use super::*;

/// Checks the attention model's training backward (through the step-by-step decoder,
/// the attention kernels, both embeddings and the encoder) by central finite differences
/// of its loss on a small batch (two dates, 4 sources): for each parameter group, its two
/// largest analytic gradients and one at random. Returns the worst
/// `|analytic - numeric| / (|numeric| + 1e-3)`.
pub fn gradient_check(gpu: &Gpu) -> Result<f64> {
    const B: usize = 4;
    const EPS: f32 = 1e-2;
    let mut rng = Rng::new(7);
    let m = Attentive::new(gpu, &mut rng)?;
    // A larger score vector than at initialisation, so that the weights are far from
    // uniform and the query's gradient (which the softmax makes cancel for uniform
    // weights) is large enough for finite differences in f32 to see.
    gpu.write(&m.v, &rng.vec_uniform_f32(ATT, -3.0, 3.0))?;
    let (s, d, t) = task(&mut rng, 2, B);
    let src = TokenIds::new(gpu, "src", &[src_len(2), B], &s, SRC_VOCAB)?;
    let dec_in = TokenIds::new(gpu, "dec_in", &[tgt_len(2), B], &d, OUT_VOCAB + 1)?;
    let tgt = TokenIds::new(gpu, "tgt", &[tgt_len(2), B], &t, OUT_VOCAB)?;
    let loss = gpu.zeros("loss", &[1])?;
    let loss_now = || -> Result<f32> {
        let mut rec = Recorder::new(gpu);
        record_attentive_step(&mut rec, &m, &src, &dec_in, &tgt, &loss)?;
        rec.run()?;
        Ok(gpu.read(&loss)?[0])
    };
    loss_now()?;
    let grads: Vec<Vec<f32>> = m
        .groups()
        .iter()
        .map(|g| gpu.read(g.grads))
        .collect::<Result<_>>()?;
    let mut worst = 0.0f64;
    for (g, analytic) in m.groups().iter().zip(&grads) {
        let mut order: Vec<usize> = (0..analytic.len()).collect();
        order.sort_by(|&a, &b| analytic[b].abs().total_cmp(&analytic[a].abs()));
        let random = (rng.next_u64() % analytic.len() as u64) as usize;
        let params = gpu.read(g.params)?;
        for i in [order[0], order[1], random] {
            let mut p = params.clone();
            p[i] = params[i] + EPS;
            gpu.write(g.params, &p)?;
            let up = loss_now()?;
            p[i] = params[i] - EPS;
            gpu.write(g.params, &p)?;
            let down = loss_now()?;
            gpu.write(g.params, &params)?;
            let numeric = f64::from(up - down) / (2.0 * f64::from(EPS));
            let err = (f64::from(analytic[i]) - numeric).abs() / (numeric.abs() + 1e-3);
            worst = worst.max(err);
        }
    }
    Ok(worst)
}

//! The `recur` command: `train` (the default: a character language model on recur's own
//! sources), `generate` (text from a checkpoint), `info` (adapters), `run` (run a
//! PyTorch-exported model on `.npy` input), `bench`. No GPU logic lives here: it parses
//! arguments, calls the library and prints.

mod bench;
mod compare;
mod figure;
mod generate;
mod gradients;
mod gradients_figures;
mod harness;
mod info;
mod interrupt;
mod plot;
mod run;
mod run_onnx;
mod train;

use clap::{Parser, Subcommand};

/// Recurrent neural networks on any GPU, through wgpu.
///
/// With no subcommand, `recur` trains the demo character language model (`recur train`
/// with its defaults, or with the train options given).
#[derive(Parser)]
#[command(name = "recur", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: train::TrainArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Train a character language model (the default command).
    Train(Box<train::TrainArgs>),
    /// Generate text from a `recur train` checkpoint, sampled on the GPU.
    Generate(generate::GenerateArgs),
    /// List the adapters wgpu sees, mark the one recur picks, show its features and limits.
    Info,
    /// Run a PyTorch-exported RNN/LSTM/GRU on a .npy input, optionally with backward.
    Run(Box<run::RunArgs>),
    /// Time forward and training steps (suites shared with the PyTorch peer), scaling, matmul;
    /// compare with a peer's or an earlier build's lines (--compare).
    Bench(bench::BenchArgs),
    /// Train vanilla RNN / LSTM / GRU on a long-range task and plot the gradient flow.
    Gradients(gradients::GradientsArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        None => train::train(&cli.train),
        Some(Command::Train(args)) => train::train(&args),
        Some(Command::Generate(args)) => generate::generate(&args),
        Some(Command::Info) => info::info(),
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Bench(args)) => bench::bench(&args),
        Some(Command::Gradients(args)) => gradients::gradients(&args),
    };
    if let Err(e) = result {
        if let Some(stop) = e.downcast_ref::<interrupt::Interrupted>() {
            eprintln!("interrupted: {stop}");
            std::process::exit(interrupt::EXIT_INTERRUPTED);
        }
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line; a cause that the message before it already ends
/// with (an OS error that its wrapper prints too: `path: {source}`) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if !line.is_empty() && line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn one_line_prints_each_cause_once() {
        let os = std::io::Error::from(std::io::ErrorKind::NotFound);
        let os_text = os.to_string();
        let e = anyhow::Error::new(recur::Error::Io {
            path: "/no/file".into(),
            source: os,
        })
        .context("--model");
        let line = one_line(&e);
        assert_eq!(line, format!("--model: /no/file: {os_text}"));
        assert_eq!(line.matches(&os_text).count(), 1);
        let two = anyhow::anyhow!("inner\nline").context("outer");
        assert_eq!(one_line(&two), "outer: inner line");
        // A cause that only appears inside the message is kept.
        let inner = anyhow::anyhow!("step").context("the step counter");
        assert_eq!(one_line(&inner), "the step counter: step");
    }
}

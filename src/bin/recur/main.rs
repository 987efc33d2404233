//! The `recur` command: `train` (the default: a character language model on recur's own
//! sources), `generate` (text from a checkpoint), `info` (adapters), `run` (run a
//! PyTorch-exported model on `.npy` input), `bench`. No GPU logic lives here: it parses
//! arguments, calls the library and prints.

mod bench;
mod compare;
mod generate;
mod info;
mod plot;
mod run;
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
    };
    if let Err(e) = result {
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string().replace('\n', " "))
        .collect::<Vec<_>>()
        .join(": ")
}

//! The `recur` command: `info` (adapters), `run` (run a PyTorch-exported model on `.npy`
//! input), and more subcommands as the project grows. No GPU logic lives here: it parses
//! arguments, calls the library and prints.

mod bench;
mod info;
mod run;

use clap::{Parser, Subcommand};

/// Recurrent neural networks on any GPU, through wgpu.
#[derive(Parser)]
#[command(name = "recur", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the adapters wgpu sees, mark the one recur picks, show its features and limits.
    Info,
    /// Run a PyTorch-exported RNN/LSTM/GRU on a .npy input, optionally with backward.
    Run(Box<run::RunArgs>),
    /// Time forward and training steps (suites shared with the PyTorch peer), scaling, matmul.
    Bench(bench::BenchArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info::info(),
        Command::Run(args) => run::run(&args),
        Command::Bench(args) => bench::bench(&args),
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

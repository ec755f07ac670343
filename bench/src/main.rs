//! `strata-bench`: Strata's load generator.
//!
//! The client workloads, through `strata-client` as applications use it
//! (`workload`): `produce` (publish throughput and latency), `consume`
//! (draining a backlog), `e2e` (end-to-end latency at a fixed rate,
//! coordinated-omission safe), each against `--broker` or a broker it
//! spawns (`spawn`), with a live progress line (`progress`), a report
//! (`stats`: text, `--json`, `--hdr-out`) and `--plot` (`plot`).
//!
//! Two lower-level ones measure the layers under the client: `log`
//! appends pre-built batches straight to a partition log on disk (the one
//! place `bench` links the broker's storage engine), and `grpc-produce`
//! sends pre-encoded batches with the generated gRPC client. `codecs`
//! measures each compression codec on the bench's payload alone.

mod codecs;
mod consume;
mod credentials;
mod grpc_produce;
mod log_append;
mod payload;
mod plot;
mod progress;
mod publish;
mod report;
mod shape;
mod share;
mod soak;
mod spawn;
mod stats;
mod workload;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "strata-bench",
    version,
    about = "Load generator for the Strata log broker"
)]
struct Cli {
    #[command(flatten)]
    connection: strata_client::ConnectionArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Producers publish as fast as they can or at --rate: publish
    /// throughput and latency.
    Produce(workload::ProduceArgs),
    /// A backlog of --messages, then consumers drain it from the beginning:
    /// consume throughput and drain time.
    Consume(workload::ConsumeArgs),
    /// Producers at --rate and consumers at once: end-to-end latency from
    /// each message's scheduled send to its reception.
    E2e(workload::E2eArgs),
    /// Append batches straight to a partition log on disk (no network).
    Log(log_append::Args),
    /// Produce pre-encoded batches to a broker over gRPC.
    GrpcProduce(grpc_produce::Args),
    /// Crash soak: kill -9 the broker again and again under durable load,
    /// then check every acknowledged record and committed offset.
    Soak(soak::Args),
    /// Each compression codec on the bench's payload, on one core: ratio,
    /// compress and decompress speed.
    Codecs(codecs::Args),
    /// A work queue: share consumers drain a backlog, with simulated work
    /// per record; accepted records per second.
    Share(share::Args),
}

/// A client workload's plan, its arguments checked; `Err` for bad ones.
fn plan(command: Command) -> anyhow::Result<Result<workload::Plan, Command>> {
    use workload::{Kind, Plan};
    Ok(Ok(match command {
        c @ (Command::Log(_)
        | Command::GrpcProduce(_)
        | Command::Soak(_)
        | Command::Codecs(_)
        | Command::Share(_)) => {
            return Ok(Err(c));
        }
        Command::Produce(a) => {
            a.check()?;
            Plan {
                kind: Kind::Produce,
                common: a.common,
                producers: a.producers,
                consumers: 0,
                group: None,
            }
        }
        Command::Consume(a) => {
            a.check()?;
            Plan {
                kind: Kind::Consume,
                common: a.common,
                producers: 1,
                consumers: a.consumers,
                group: a.group,
            }
        }
        Command::E2e(a) => {
            a.check()?;
            Plan {
                kind: Kind::E2e,
                common: a.common,
                producers: a.producers,
                consumers: a.consumers,
                group: a.group,
            }
        }
    }))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    credentials::init(cli.connection.clone());
    let plan = match plan(cli.command)? {
        Ok(plan) => plan,
        Err(Command::Log(args)) => return log_append::run(args),
        Err(Command::GrpcProduce(args)) => return grpc_produce::run(args),
        Err(Command::Codecs(args)) => return codecs::run(args),
        Err(Command::Share(args)) => return share::run(args),
        Err(Command::Soak(args)) => {
            return tokio::runtime::Runtime::new()?.block_on(soak::run(args));
        }
        Err(_) => unreachable!("client workloads have plans"),
    };
    let report = workload::run(plan)?;
    if report.integrity.is_some_and(|i| !i.ok()) {
        anyhow::bail!("messages were lost or duplicated (see the report)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &str) -> Result<(), String> {
        let argv = std::iter::once("strata-bench").chain(args.split_whitespace());
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        plan(cli.command).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn bad_parameters_are_refused_before_anything_runs() {
        assert_eq!(check("produce --messages 10"), Ok(()));
        assert_eq!(check("e2e --rate 1000 --duration 10s"), Ok(()));
        assert_eq!(
            check("consume --messages 1000 --consumers 2 --group g"),
            Ok(())
        );
        for (args, says) in [
            ("produce --message-size 10", "--message-size"),
            ("produce --partitions 0", "--partitions"),
            ("produce --producers 0", "--producers"),
            ("produce --messages 0", "--messages"),
            ("produce --duration 0s", "--duration"),
            ("produce --duration soon", "30s"),
            ("produce --duration 5s --messages 9", "cannot be used with"),
            ("produce --keys fixed:0", "fixed:N"),
            ("produce --acks sometimes", "possible values"),
            ("produce --plot latency.png", "SVG"),
            ("produce --json /no/such/dir/r.json", "does not exist"),
            ("produce --batch-bytes 10", "--batch-bytes"),
            ("produce --in-flight 0", "--in-flight"),
            ("produce --in-flight 6", "--in-flight"),
            ("e2e --duration 5s", "--rate"),
            ("e2e --rate 10 --consumers 0", "--consumers"),
            ("consume --duration 5s", "--messages"),
        ] {
            let err = check(args).expect_err(args);
            assert!(err.contains(says), "{args}: {err}");
        }
    }
}

// The same allocator as the broker: tonic allocates per call.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

"""CLI for the training pipeline: ``personabot data prepare``, ``train``, ``eval``, ``finetune``.

``register(app)`` adds the commands to the main typer app. Bad input exits with code 2
and one line on stderr (no traceback). Heavy imports happen inside the commands.
Also runnable alone: ``python -m bots.training_cli train --help``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer

from core.errors import ConfigError, PersonabotError


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def register(app: typer.Typer) -> None:
    """Add the ``data`` sub-app and the ``train``/``eval``/``finetune`` commands to ``app``."""
    data_app = typer.Typer(help="Build training datasets.", no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("prepare")
    def prepare_cmd(
        out: Annotated[Path, typer.Option(help="Output folder for train/valid/test.jsonl and stats.json.")] = Path("data/dialogue"),
        chitchat: Annotated[bool, typer.Option(help="Include the chitchat-dataset corpus.")] = True,
        db: Annotated[Optional[Path], typer.Option(help="A bot's SQLite database: adds chats of users who consented to training.")] = None,
        jsonl: Annotated[Optional[list[Path]], typer.Option(help="Extra conversations as JSONL (repeatable).")] = None,
        valid: Annotated[float, typer.Option(help="Fraction of conversations for validation.")] = 0.05,
        test: Annotated[float, typer.Option(help="Fraction of conversations for the test split.")] = 0.05,
        seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
        features: Annotated[bool, typer.Option(help="Also write stop-word-free 'features' per turn (retrieval models only).")] = False,
        overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
        grounded: Annotated[int, typer.Option(help="Also add this many grounded dialogues (memories, passages; English and Chinese) to train, 1/40 as many to valid.")] = 0,
        grounded_invented: Annotated[float, typer.Option(help="Share of the grounded memory values made up on the spot (names, places, things no list holds), so the model must copy them from the prompt.")] = 0.0,
        grounded_followups: Annotated[float, typer.Option(help="Share of grounded dialogues that ask one to four earlier questions on the same memories or articles first (more copied values per example).")] = 0.0,
    ) -> None:
        """Collect, clean (NFKC, denoise, dedupe, scrub PII) and split dialogue data."""
        from rich.console import Console
        from rich.progress import track

        from training import data as d

        try:
            sources = []
            if chitchat:
                sources.append(d.chitchat_conversations())
            if db is not None:
                sources.append(asyncio.run(_consented_logs(db)))
            extra, bad = [], 0
            for path in jsonl or []:
                recs, n_bad = d.read_jsonl(path)
                extra += recs
                bad += n_bad
            if not sources and not extra:
                _fail("no data source: enable --chitchat or give --db/--jsonl")

            def chained():
                for src in sources:
                    yield from src

            stats = d.prepare(chained(), out, extra=extra, malformed_lines=bad, valid=valid, test=test, seed=seed,
                              features=features, overwrite=overwrite,
                              progress=lambda it: track(it, description="cleaning", transient=True))
            counts = {}
            if grounded:
                from training.grounded import add_grounded

                counts = add_grounded(out, grounded, seed=seed, invented=grounded_invented, followups=grounded_followups)
        except PersonabotError as exc:
            _fail(str(exc))
        c = Console()
        c.print(f"{stats.conversations} conversations, {stats.turns} turns, {stats.tokens} words -> {out}")
        if counts:
            c.print(f"grounded dialogues added (split/language/kind): {counts}")
        c.print(f"splits {stats.splits}; dropped {dict(stats.dropped)}")
        if stats.dropped.get("malformed_line"):
            c.print(f"[yellow]{stats.dropped['malformed_line']} malformed or empty JSONL line(s) skipped[/yellow]")

    @app.command("train")
    def train_cmd(
        data: Annotated[Path, typer.Option(help="Folder written by `data prepare`.")],
        out: Annotated[Path, typer.Option(help="Output folder (Hugging Face format).")],
        arch: Annotated[str, typer.Option(help="transformer (Llama-style) or lstm (attention-LSTM baseline).")] = "transformer",
        tokenizer: Annotated[Optional[Path], typer.Option(help="Reuse a saved tokenizer (e.g. another model's folder).")] = None,
        vocab_size: Annotated[int, typer.Option(help="BPE vocabulary when training a tokenizer.")] = 8192,
        block_size: Annotated[int, typer.Option(help="Longest training window in tokens.")] = 256,
        context_size: Annotated[Optional[int], typer.Option(help="Model context (positions); default: block size.")] = None,
        hidden_size: Annotated[int, typer.Option()] = 256,
        layers: Annotated[int, typer.Option()] = 6,
        heads: Annotated[int, typer.Option()] = 4,
        intermediate_size: Annotated[int, typer.Option(help="Transformer MLP width.")] = 704,
        batch_size: Annotated[int, typer.Option()] = 16,
        lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 1e-3,
        warmup_steps: Annotated[int, typer.Option()] = 100,
        max_steps: Annotated[int, typer.Option()] = 1600,
        eval_every: Annotated[int, typer.Option(help="Steps between validation runs.")] = 100,
        eval_batches: Annotated[int, typer.Option(help="Validation batches per run.")] = 20,
        checkpoint_every: Annotated[int, typer.Option()] = 100,
        patience: Annotated[int, typer.Option(help="Validations without improvement before early stop.")] = 4,
        max_minutes: Annotated[Optional[float], typer.Option(help="Wall-clock budget.")] = None,
        loss_on: Annotated[str, typer.Option(help="all (every speaker's turns) or assistant.")] = "all",
        seed: Annotated[int, typer.Option()] = 0,
        threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: every core; 1 is steadier on a busy machine).")] = None,
        resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.")] = False,
        init_from: Annotated[Optional[Path], typer.Option(help="Start from this trained model's weights and tokenizer (its shape; the size options are ignored), with a fresh optimizer and schedule, e.g. to continue on new data.")] = None,
    ) -> None:
        """Train a dialogue model (from scratch, or from --init-from); the best by validation loss is saved to OUT."""
        from training.train import TrainConfig, train

        cfg = TrainConfig(
            data=str(data), out=str(out), arch=arch, tokenizer=str(tokenizer) if tokenizer else None,
            vocab_size=vocab_size, block_size=block_size, context_size=context_size, hidden_size=hidden_size, layers=layers, heads=heads,
            intermediate_size=intermediate_size, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
            max_steps=max_steps, eval_every=eval_every, eval_batches=eval_batches, checkpoint_every=checkpoint_every,
            patience=patience, max_minutes=max_minutes, loss_on=loss_on, seed=seed, threads=threads,
            init_from=str(init_from) if init_from else None,
        )
        try:
            result = train(cfg, resume=resume)
        except PersonabotError as exc:
            _fail(str(exc))
        typer.echo(f"saved {result.out} ({result.parameters / 1e6:.2f}M params, {result.steps} steps, "
                   f"best val loss {result.best_val_loss:.4f}, {result.stopped})")

    @app.command("eval")
    def eval_cmd(
        models: Annotated[list[Path], typer.Argument(help="Model folders (Hugging Face format).")],
        data: Annotated[Path, typer.Option(help="Folder written by `data prepare` (uses test and train splits).")] = Path("data/dialogue"),
        n_rank: Annotated[int, typer.Option(help="Hits@1/20 examples (one per test conversation).")] = 200,
        n_ppl_windows: Annotated[int, typer.Option(help="Test windows for perplexity.")] = 400,
        n_samples: Annotated[int, typer.Option(help="Sampled replies for distinct-n and length.")] = 50,
        seed: Annotated[int, typer.Option()] = 0,
        threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: every core).")] = None,
        md: Annotated[Path, typer.Option(help="Markdown report.")] = Path("docs/eval.md"),
        json_out: Annotated[Path, typer.Option("--json", help="JSON report.")] = Path("docs/eval.json"),
        grounded: Annotated[bool, typer.Option(help="Grounded evaluation instead (memories, passages, language) through the chat service.")] = False,
        n_grounded: Annotated[int, typer.Option(help="Held-out examples per kind and language (--grounded).")] = 40,
        temperature: Annotated[float, typer.Option(help="Sampling temperature (--grounded).")] = 0.5,
    ) -> None:
        """Perplexity, Hits@1/20, distinct-n and length on the test split, plus a TF-IDF retrieval baseline.

        With --grounded: fact recall, abstention, passage use and language match on held-out
        users, and the 20 fixed prompts; written as the ``## Grounding`` section of --md and
        to --json.
        """
        import shlex
        import sys

        from rich.console import Console
        from rich.progress import track
        from rich.table import Table

        import os

        import torch

        from training.evaluate import COLUMNS, EvalSettings, evaluate, table_rows, write_reports

        torch.set_num_threads(threads or os.cpu_count() or 1)

        command = "personabot " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if grounded:
            _grounded_eval(models, n_grounded, seed, temperature, md, json_out, command)
            return
        settings = EvalSettings(n_rank=n_rank, n_ppl_windows=n_ppl_windows, n_samples=n_samples, seed=seed,
                                extra={"command": command})
        try:
            report = evaluate([str(m) for m in models], str(data), settings,
                              progress=lambda it: track(it, description="ranking", transient=True))
        except PersonabotError as exc:
            _fail(str(exc))
        table = Table(title=f"test split, {report['rank_examples']} ranking examples (chance Hits@1/20 = 0.05)")
        for _, header in COLUMNS:
            table.add_column(header, justify="right")
        for row in table_rows(report):
            table.add_row(*row)
        Console().print(table)
        write_reports(report, md, json_out)
        typer.echo(f"wrote {md} and {json_out}")

    @app.command("finetune")
    def finetune_cmd(
        base: Annotated[str, typer.Option(help="Base causal LM: a local folder or a hub id already in the cache.")],
        data: Annotated[Path, typer.Option(help="Conversations as JSONL ({'turns': [{'role', 'text'}]} or {'messages': [...]}).")],
        out: Annotated[Path, typer.Option(help="Folder for the LoRA adapter.")],
        rank: Annotated[int, typer.Option(help="LoRA rank r.")] = 8,
        alpha: Annotated[int, typer.Option(help="LoRA alpha.")] = 16,
        target_modules: Annotated[str, typer.Option(help="'all-linear' or comma-separated module names.")] = "all-linear",
        lr: Annotated[float, typer.Option()] = 2e-4,
        epochs: Annotated[int, typer.Option()] = 1,
        max_steps: Annotated[Optional[int], typer.Option(help="Overrides epochs.")] = None,
        batch_size: Annotated[int, typer.Option()] = 4,
        max_length: Annotated[int, typer.Option(help="Tokens per conversation (longer ones are cut).")] = 512,
        seed: Annotated[int, typer.Option()] = 0,
        overwrite: Annotated[bool, typer.Option()] = False,
    ) -> None:
        """LoRA fine-tuning on assistant turns; saves an adapter for PeftModel.from_pretrained."""
        from training.finetune import FinetuneConfig, finetune

        cfg = FinetuneConfig(base=base, data=str(data), out=str(out), rank=rank, alpha=alpha, target_modules=target_modules,
                             lr=lr, epochs=epochs, max_steps=max_steps, batch_size=batch_size, max_length=max_length,
                             seed=seed, overwrite=overwrite)
        try:
            info = finetune(cfg)
        except PersonabotError as exc:
            _fail(str(exc))
        typer.echo(f"adapter saved to {out}: {info['steps']} steps, loss {info['first_loss']:.3f} -> {info['last_loss']:.3f}")


def _grounded_eval(models: list[Path], n: int, seed: int, temperature: float, md: Path, json_out: Path, command: str) -> None:
    import json

    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    import adapters.platforms  # noqa: F401  (registers the bot files' [console]/[telegram]/[discord] sections)
    from training.grounded_eval import METRICS, evaluate_grounded, fixed_prompt_replies, run, write_grounded_section

    reports = []
    try:
        for model in models:
            report = run(evaluate_grounded(str(model.resolve()), n, seed, temperature,
                                           progress=lambda it: track(it, description=f"{model.name}", transient=True)))
            report["fixed"] = run(fixed_prompt_replies(str(model.resolve())))
            reports.append(report)
    except PersonabotError as exc:
        _fail(str(exc))
    table = Table(title="grounding (held-out users)")
    for header in ("model", "lang", *(h for _, h in METRICS)):
        table.add_column(header, justify="right")
    for report in reports:
        for lang, row in report["summary"].items():
            table.add_row(Path(report["model"]).name, lang,
                          *(f"{row[k]:.2f}" if k in row else "–" for k, _ in METRICS))
    Console().print(table)
    json_out.write_text(json.dumps({"command": command, "reports": reports}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_grounded_section(md, reports, command)
    typer.echo(f"wrote the grounding section of {md} and {json_out}")


async def _consented_logs(db: Path) -> list:
    """Chats of users who consented to training, from a bot's SQLite database."""
    from core.storage import SQLiteStore
    from training.data import store_conversations

    if not db.is_file():
        raise ConfigError(f"database {db} not found")
    async with SQLiteStore(db) as store:
        return await store_conversations(store, flag="training")


def main() -> None:
    app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
    register(app)
    app()


if __name__ == "__main__":
    main()

"""`svs import`, `versions`, `diff`, `rollback`, `refresh`: the prompt store's commands."""

from __future__ import annotations

from pathlib import Path

import typer

from svs.flows.cli_common import (
    SET_OPTION,
    STORE_ERRORS,
    STORE_OPTION,
    fail,
    runner_option,
    user_errors_without_tracebacks,
)


def import_cmd(
    path: Path = typer.Argument(..., help="A .jsonl, .csv or .parquet file, or a folder saved by `datasets`."),
    set_name: str = SET_OPTION,
    store: Path = STORE_OPTION,
    fmt: str = typer.Option("table", "--format", "-f", help="table (problem/answer columns), verl, trl or openrlhf."),
    text_col: str | None = typer.Option(None, "--text-col", help="Column with the problem text (default: problem, question, text, prompt, query or input)."),
    answer_col: str | None = typer.Option(None, "--answer-col", help="Column with the answer (default: answer, final_answer, ground_truth, gold, label or target)."),
    id_col: str | None = typer.Option(None, "--id-col", help="The file's own id column, kept as metadata.source_id (svs ids come from the content)."),
    keep_gold: bool = typer.Option(False, "--keep-gold", help="Keep $...$ and \\boxed{} around answers as written."),
    add: bool = typer.Option(False, "--add", help="Add the problems to an existing set as its next version."),
) -> None:
    """Import (problem, answer) rows as a prompt set (version 1), or --add them to one."""
    from svs.flows.store_commands import import_into_store
    from svs.pipeline.importers import ColumnMap
    from svs.pipeline.store import PromptStore

    try:
        columns = ColumnMap(text=text_col, answer=answer_col, id=id_col, strip_gold=not keep_gold)
        result, added, duplicates = import_into_store(PromptStore(store), set_name, path, fmt, columns, add)
    except STORE_ERRORS as exc:
        fail(exc)
    verb = {"published": "published", "adopted": "recovered", "already": "already imported as"}[result.outcome]
    print(f"{verb} {set_name}@v{result.version}: {added} problems added"
          + (f", {duplicates} duplicates skipped" if duplicates else ""))

def versions(
    set_name: str | None = typer.Option(None, "--set", help="Prompt set; default: list the sets."),
    store: Path = STORE_OPTION,
) -> None:
    """List the sets of a store, or the versions of one set (* marks the current one)."""
    from rich.console import Console

    from svs.flows.store_commands import versions_table
    from svs.pipeline.store import PromptStore

    prompt_store = PromptStore(store)
    try:
        if set_name is None:
            names = prompt_store.names()
            if not names:
                print(f"no prompt sets in {store}; create one with `svs import FILE --set NAME`")
            for name in names:
                current = prompt_store.current_or_none(name)
                print(f"{name}  {'v' + str(current) if current else 'no current version'}")
            return
        Console().print(versions_table(prompt_store, set_name))
    except STORE_ERRORS as exc:
        fail(exc)

def diff(
    a: str = typer.Argument(..., help="Older version: v1, or NAME@v1."),
    b: str | None = typer.Argument(None, help="Newer version; default: the current one."),
    set_name: str | None = typer.Option(None, "--set", help="Prompt set, when A and B are bare versions."),
    store: Path = STORE_OPTION,
    show: int = typer.Option(5, "--show", help="Example problems shown per kind of change."),
    as_json: bool = typer.Option(False, "--json", help="Print the full diff as JSON instead."),
) -> None:
    """What changed between two versions: added (by synthesizer), retired (by reason), changed."""
    import json

    from rich.console import Console

    from svs.flows.store_commands import diff_report
    from svs.pipeline.store import PromptStore

    try:
        tables, data = diff_report(PromptStore(store), a, b, set_name, show)
    except STORE_ERRORS as exc:
        fail(exc)
    if as_json:
        print(json.dumps(data, indent=1, default=str))
        return
    for table in tables:
        Console().print(table)

def rollback(
    set_name: str = SET_OPTION,
    store: Path = STORE_OPTION,
    to: str | None = typer.Option(None, "--to", help="Version to make current; default: the current one's parent."),
) -> None:
    """Make an earlier version current again (it is verified first; nothing is deleted)."""
    from svs.pipeline.store import PromptStore, parse_version

    try:
        before, after = PromptStore(store).rollback(set_name, None if to is None else parse_version(to))
    except STORE_ERRORS as exc:
        fail(exc)
    print(f"{set_name}: current version {'v' + str(before) if before else 'none'} -> v{after}")

def refresh(
    set_name: str = SET_OPTION,
    store: Path = STORE_OPTION,
    prompts: Path | None = typer.Option(None, "--prompts", help="Problems file imported as v1 when the set does not exist yet."),
    rollouts: list[Path] = typer.Option([], "--rollouts", "-r", help="Rollout files or dump folders (native, verl, TRL); none: generate with --model."),
    model: str | None = typer.Option(None, "--model", help="Local model folder or .gguf file (dequantized once into a cached folder): generates rollouts, synthesizes and verifies. Overrides policy.model."),
    backend: str | None = typer.Option(None, "--backend", help="Policy backend: transformers or vllm (default: policy.backend, transformers)."),
    dtype: str | None = typer.Option(None, "--dtype", help="Weights dtype: auto, float32, bfloat16, float16 (policy.dtype)."),
    device: str | None = typer.Option(None, "--device", help="transformers device: cpu, cuda, cuda:1 (policy.device)."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (policy.threads)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Sequences per generate call (policy.batch_size)."),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", help="Cap on every stage's token budget (policy.max_new_tokens)."),
    chat_template: str | None = typer.Option(None, "--chat-template", help="Replace the tokenizer's chat template: Jinja text or a file (policy.chat_template)."),
    system_prompt: str | None = typer.Option(None, "--system-prompt", help="System message sent first; default: the template's own (policy.system_prompt)."),
    publish_weak: bool = typer.Option(False, "--publish-weak", help="Publish even when the policy gave no seeds or no accepted variant (policy.require_variants: false)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML/JSON with sections refresh, diagnosis, synthesizers, svs, symbolic, consistency, generate."),
    text_col: str | None = typer.Option(None, "--text-col", help="Problem column of --prompts."),
    answer_col: str | None = typer.Option(None, "--answer-col", help="Answer column of --prompts."),
    export: list[str] = typer.Option([], "--export", help="FORMAT=PATH to export the new version to (verl, trl, openrlhf); {name} and {version} are filled in."),
    report: Path | None = typer.Option(None, "--report", help="Folder for the diagnosis report (report.json, report.html)."),
    runner: str = typer.Option("thread", "--runner", help="Task runner for the diagnosis: thread, dask or ray (pip install 'svs\\[dask]' / 'svs\\[ray]')."),
    workers: int = typer.Option(2, "--workers", help="Workers of a local Dask cluster / CPUs of a local Ray instance."),
    address: str | None = typer.Option(None, "--address", help="A running Dask scheduler or Ray cluster instead of a local one."),
    no_prefect: bool = typer.Option(False, "--no-prefect", envvar="SVS_NO_PREFECT", help="Run the same steps as plain functions: no Prefect server, retries, caching or artifacts (env SVS_NO_PREFECT=1)."),
) -> None:
    """Diagnose -> synthesize -> verify -> publish -> export the next version of a prompt set
    (the `svs-refresh` Prefect flow; see docs/flows.md)."""
    from rich.console import Console

    from svs.flows.refresh_flow import Steps, refresh_flow, refresh_steps
    from svs.flows.store_commands import refresh_report

    err = Console(stderr=True)
    try:
        arguments = dict(store=str(store), name=set_name, rollouts=[str(r) for r in rollouts],
                         prompts=str(prompts) if prompts else None, model=model, backend=backend,
                         config=str(config) if config else None, text_col=text_col,
                         answer_col=answer_col, exports=list(export),
                         report=str(report) if report else None,
                         runner=runner_option(runner, workers, address),
                         policy={"dtype": dtype, "device": device, "threads": threads,
                                 "batch_size": batch_size, "max_new_tokens": max_new_tokens,
                                 "chat_template": chat_template,
                                 "system_prompt": system_prompt,
                                 "require_variants": False if publish_weak else None})
        if no_prefect:
            outcome = refresh_steps(Steps(False, say=lambda line: err.print(line, highlight=False)), **arguments)
        else:
            with user_errors_without_tracebacks():
                outcome = refresh_flow(**arguments)
        summary = outcome.summary
    except STORE_ERRORS as exc:
        fail(exc)
    table, line = refresh_report(summary)
    if summary.outcome == "published":
        Console().print(table)
    print(line)
    for fmt, path in outcome.exported.items():
        print(f"exported {fmt} -> {path}")
    if outcome.report:
        print(f"report -> {Path(outcome.report) / 'report.html'}")

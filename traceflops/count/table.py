"""The terminal table of `traceflops count`: one row per layer like `model.summary()`, 80 columns wide,
then the totals in full."""
from __future__ import annotations

TABLE_WIDTH = 80


def short(value) -> str:
    """4110000000 -> "4.11 G"; None -> "—" (not a contraction, or not counted)."""
    if value is None:
        return "—"
    for size, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return str(value)


def render_count(result, file=None) -> None:
    """Print the per-layer table and the totals of a CountResult."""
    from rich.console import Console
    from rich.table import Table
    console = Console(file=file, width=TABLE_WIDTH, highlight=False)
    table = Table(title=f"{result.model}: model FLOPs, batch {result.batch_size}"
                  + (", training step" if result.train else ""), title_justify="left")
    table.add_column("Layer (type)", overflow="fold", ratio=1)
    for name in ("MACs", "FLOPs") + (("causal FLOPs",) if result.causal else ()) + ("Params",):
        table.add_column(name, justify="right", no_wrap=True)
    for row in result.rows:
        cells = [f"{row.layer} ({row.type})", short(row.macs), short(row.flops) if row.counted else "not counted"]
        if result.causal:
            cells.append(short(row.causal_flops))
        cells.append(f"{row.params:,}")
        table.add_row(*cells)
    console.print(table)
    lines = [("MACs", result.macs), ("FLOPs", result.flops)]
    if result.causal:
        lines.append(("causal FLOPs", result.total("causal_flops")))
    if result.train:
        lines += [("forward FLOPs", result.total("forward_flops")), ("backward FLOPs", result.total("backward_flops"))]
    lines.append(("parameters", result.params))
    for label, value in lines:
        console.print(f"{label:<16}{value:>20,}")
    if result.train:
        update = result.optimizer
        per = update.flops_per_parameter
        figure = f"{result.optimizer_flops:,}" if per is not None else "not counted"
        console.print(f"{'optimizer FLOPs':<16}{figure:>20}  ({update.name}, {per} per parameter; {update.note})")
    if result.not_counted:
        console.print(f"not counted ({len(result.not_counted)} layers, not in the totals):")
        for entry in result.not_counted:
            console.print(f"  {entry['layer']} ({entry['type']}): {entry['reason']}")

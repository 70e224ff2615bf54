"""`collapseguard curate`: a training mix with an exact, provable human share."""

from __future__ import annotations

import json
from os.path import join

import click

from collapseguard.cli.options import overwrite_option


@click.command("curate")
@click.option("--human", multiple=True, metavar="POOL", help="Human pool: a shard or folder of shards (repeatable).")
@click.option("--synthetic", multiple=True, metavar="POOL", help="Synthetic pool (repeatable).")
@click.option("--human-fraction", type=float, help="Share of the mix that is human, in [0, 1].")
@click.option("--size", type=int, help="Records in the mix.")
@click.option("--tokens", type=int, help="Whitespace-word tokens in the mix (len(text.split()) per record).")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed (same seed and pools: same bytes).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder (data/ shards + manifest.json).")
@click.option("--key", type=click.Path(dir_okay=False), help="Ed25519 private key: sign the manifest (DSSE).")
@click.option("--name", default=None, help="Dataset name in the manifest (default: the --out folder's name).")
@click.option("--attributes", multiple=True, metavar="SCAN_DIR",
              help="`collapseguard scan --out` folder of a pool (repeatable); flagged records never count as human.")
@click.option("--keep", type=click.Choice(["human", "human+abstain"]), default="human", show_default=True,
              help="Human records to take from scanned pools: human only, or also those the scan abstained on "
                   "(counted and recorded in the manifest).")
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(dir_okay=False),
              help="Trusted Ed25519 public key (repeatable): each pool's manifest.json must be signed with one.")
@click.option("--allow-unsigned", is_flag=True,
              help="Accept pools without a manifest or with an unsigned one (their files still checked when "
                   "there is one); recorded in the output's manifest.")
@click.option("--text-column", default="text", show_default=True, help="Text column / JSON field of the pools.")
@click.option("--shard-records", type=int, default=100_000, show_default=True, help="Records per output shard.")
@click.option("--from-simulation", "results", type=click.Path(dir_okay=False),
              help="results.parquet of `simulate run/sweep` or an LM run: choose the human fraction from it.")
@click.option("--max-degradation", type=float, help="With --from-simulation: allowed degradation (metric change from generation 0).")
@click.option("--generations", type=int, help="With --from-simulation: generations the degradation must stay within the limit.")
@click.option("--metric", help="With --from-simulation: metric (default: the world's primary metric; lm: test_perplexity).")
@click.option("--world", help="With --from-simulation: the world to read when the file holds several.")
@click.option("--policy", default="replace", show_default=True, help="With --from-simulation: the mixing workflow to read.")
@click.option("--json", "json_out", is_flag=True, help="Print the curation summary as JSON.")
@overwrite_option
def curate(human, synthetic, human_fraction, size, tokens, seed, out, key, name, attributes, keep, public_keys,
           allow_unsigned, text_column, shard_records, results, max_degradation, generations, metric, world, policy,
           json_out, overwrite) -> None:
    """Mix human and synthetic pools with an exact human share, sampled without replacement.

    Each pool is verified first against the manifest.json in its folder (or beside a pool file):
    signed by a --public-key, no file unlisted, changed or removed; --allow-unsigned accepts pools
    without one (recorded). Records the scan abstained on, and records that cannot be read, are
    never counted as human (--keep human+abstain takes the abstentions, and says how many).

    Writes OUT/data/part-*.parquet with provenance columns (origin, source, license, generator,
    generation, parent_ids, sha256, scan decision and scores) and OUT/manifest.json, an in-toto
    statement (a signed DSSE envelope with --key) whose parents are the pools' manifest.json.

    \b
    Examples:
      collapseguard curate --human wiki/ --synthetic gen/ --public-key team.pub --human-fraction 0.3 \\
          --size 10000 --seed 1 --out mix
      collapseguard curate --human wiki/ --attributes scans/wiki --synthetic gen/ --human-fraction 0.5 \\
          --tokens 2000000 --key keys/team.key --public-key keys/team.key.pub --out mix
      collapseguard curate --human notes.jsonl --synthetic gen.jsonl --allow-unsigned --human-fraction 0.5 \\
          --size 100 --out mix
      collapseguard curate --human wiki/ --synthetic gen/ --size 10000 --out mix \\
          --from-simulation runs/sweep/results.parquet --world gaussian --max-degradation 0.05 --generations 50
    """
    from collapseguard.curate.mix import CurateConfig
    from collapseguard.curate.mix import curate as run_curate
    from collapseguard.errors import CollapseguardError

    chosen = None
    if results is not None:
        if human_fraction is not None:
            raise CollapseguardError("pass either --human-fraction or --from-simulation, not both")
        if max_degradation is None or generations is None:
            raise CollapseguardError("--from-simulation needs --max-degradation X and --generations G")
        from collapseguard.simulate.simulated_fraction import pick_fraction

        chosen = pick_fraction(results, max_degradation, generations, metric=metric, world=world, policy=policy)
        human_fraction = chosen["human_fraction"]
    elif human_fraction is None:
        raise CollapseguardError("pass --human-fraction F, or --from-simulation results.parquet to choose it")
    config = CurateConfig(tuple(human), tuple(synthetic), human_fraction, size, tokens, seed, text_column,
                          tuple(attributes), shard_records, tuple(public_keys), allow_unsigned, keep)
    info = run_curate(config, out, key=key, overwrite=overwrite, extra=chosen, name=name)
    if json_out:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    if chosen is not None:
        click.echo(describe_choice(chosen))
    unit = info["unit"]
    counts = info["records"] if unit == "records" else info["tokens"]
    click.echo(f"wrote {sum(info['records'].values())} records ({counts['human']} human, {counts['synthetic']} "
               f"synthetic {unit}; human share {info['human_share']:.6g}) to {join(out, 'data')} in {len(info['files'])} "
               f"shard(s); manifest {join(out, 'manifest.json')} ({'signed' if info['signed'] else 'unsigned'})")
    if info["abstained_kept_as_human"]:
        click.echo(f"  {info['abstained_kept_as_human']} human records of the mix are ones the scan abstained on "
                   "(--keep human+abstain)")
    for p in info["pools"]:
        left = {k: p[k] for k in ("flagged_synthetic", "abstained_left_out", "origin_disagrees", "unreadable",
                                  "no_text") if p[k]}
        if left:
            click.echo(f"  {p['kind']} pool {p['path']}: left out " + ", ".join(f"{v} {k.replace('_', ' ')}"
                                                                                for k, v in left.items()))
        if not p["trust"].get("signed"):
            click.echo(f"  {p['kind']} pool {p['path']}: not signature-verified "
                       f"({'unsigned manifest' if p['trust'].get('manifest') else 'no manifest'}; --allow-unsigned)")


def describe_choice(chosen: dict) -> str:
    """Which rows the fraction came from, and every fraction's worst degradation."""
    lines = [f"human fraction {chosen['human_fraction']:g} chosen from {chosen['file']}: world {chosen['world']}, "
             f"policy {chosen['policy']}, metric {chosen['metric']} "
             f"({'higher' if chosen['higher_is_worse'] else 'lower'} is worse), generations 0..{chosen['generations'][1]}, "
             f"{chosen['rows']} rows; limit {chosen['max_degradation']:g} on the median and the upper 95% bound"]
    for r in chosen["fractions"]:
        lines.append(f"  fraction {r['human_fraction']:g}: {r['seeds']} seeds, worst median {r['max_median']:.4g}, "
                     f"worst upper {r['max_upper']:.4g} -> {'passes' if r['passes'] else 'over the limit'}")
    return "\n".join(lines)

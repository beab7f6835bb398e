"""``sitewatch detect``, ``sitewatch methods`` and ``sitewatch train``: change detection
between two images, without a site or a catalogue."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import click
from rasterio.errors import NotGeoreferencedWarning

from sitewatch.cli.common import Ctx, echo_json, err, esc, out, pass_ctx, progress_bar
from sitewatch.cli.tables import Col, print_table, wide_option
from sitewatch.imagery.sensors import PAIR_METHOD


def _params(items: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; values parsed as int, float or bool where they look like one."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--param")
        value: Any = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            for conv in (int, float):
                try:
                    value = conv(raw)
                    break
                except ValueError:
                    continue
        params[key.strip()] = value
    return params


TRUST_RISK = ("a legacy model file (format 1, from older sitewatch) is a pickle: loading it "
              "RUNS ANY CODE IT HOLDS. Only for files you made yourself or fully trust; "
              "current model files are data and need no trust.")


def _bands(text: str | None) -> list[str] | None:
    return [b.strip() for b in text.split(",") if b.strip()] if text else None


@click.command()
@click.argument("before", type=click.Path(exists=True))
@click.argument("after", type=click.Path(exists=True))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for change.tif, score.tif, changes.geojson and summary.json.")
@click.option("--method", "-m", help="Detector (see `sitewatch methods`) [default: "
              f"{PAIR_METHOD['optical']} for optical, {PAIR_METHOD['sar']} for SAR].")
@click.option("--threshold", "-t", help="otsu, ki (Kittler-Illingworth), kmeans, their "
              "-robust forms (otsu-robust, ki-robust, kmeans-robust: a spike of ties at the "
              "lowest score, such as dark water, left out and outliers clipped), "
              "significance, quantile, or a number [default: the method's].")
@click.option("--alpha", type=float, default=0.01, show_default=True,
              help="Significance level for --threshold significance.")
@click.option("--model", type=click.Path(exists=True, dir_okay=False),
              help="A model trained with `sitewatch train`, either type (instead of "
              "--method).")
@click.option("--trust-model", is_flag=True, help="Load a legacy model file too; "
              + TRUST_RISK)
@click.option("--sensor", type=click.Choice(["optical", "sar"]),
              help="What the images are, when their files do not say (plain SAR intensity "
                   "images carry no metadata).")
@click.option("--bands", help="Comma-separated bands to compare (common names such as "
              "red,nir,swir16) [default: blue..swir22 as available].")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A method parameter (see `sitewatch methods --json`); repeatable.")
@click.option("--mask", type=click.Path(exists=True, dir_okay=False),
              help="Areas to ignore: a GeoJSON of polygons or a raster (non-zero = ignore).")
@click.option("--min-pixels", type=int, default=4, show_default=True,
              help="Drop change objects smaller than this.")
@click.option("--no-coregister", is_flag=True, help="Do not co-register AFTER to BEFORE.")
@click.option("--no-normalise", is_flag=True, help="No relative radiometric normalisation.")
@click.option("--no-clouds", is_flag=True, help="No spectral cloud test (when the scenes "
              "have no provider cloud mask).")
@click.option("--window", type=int, default=1024, show_default=True,
              help="Processing window (pixels); memory grows with its square.")
@click.option("--overwrite", is_flag=True, help="Replace outputs already in --out.")
@click.option("--quicklook", is_flag=True, help="Also write quicklook.png: the pair with its "
              "change objects, one stretch, a caption (downsampled past 2000 px a side).")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json.")
@pass_ctx
def detect(ctx: Ctx, before: str, after: str, out_dir: str, method: str | None,
           threshold: str | None, alpha: float, model: str | None, trust_model: bool,
           sensor: str | None,
           bands: str | None, params: tuple[str, ...], mask: str | None, min_pixels: int,
           no_coregister: bool, no_normalise: bool, no_clouds: bool, window: int,
           overwrite: bool, quicklook: bool, as_json: bool) -> None:
    """Detect change from BEFORE to AFTER.

    Each is an image as the catalogue accepts it: a multiband file, or a folder of
    one-file-per-band (such as a Sentinel-2 band set or an OSCD imgs_1).  Writes, on
    BEFORE's grid at its finest resolution: change.tif (uint8: 1 change, 0 no change, 255
    not observed), score.tif (float32), changes.geojson (objects with area) and
    summary.json.
    """
    from sitewatch.change.tiled import detect_scenes

    if model and method:
        raise click.UsageError("give --method or --model, not both")
    det: Any = method
    if model:
        from sitewatch.change.learned import detector_from_file

        det = detector_from_file(model, trust_pickle=trust_model)
    with progress_bar(not as_json) as tick, warnings.catch_warnings():
        # Plain pictures (SAR BMPs) are fine here: the summary says they are on pixel grids.
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        run = detect_scenes(
            before, after, out_dir, method=det, sensor=sensor, params=_params(params) or None,
            threshold=threshold, alpha=alpha, bands=_bands(bands),
            normalise=False if no_normalise else None, coregister=not no_coregister,
            mask=mask, clouds=not no_clouds, window=window, min_pixels=min_pixels,
            overwrite=overwrite, progress=tick)
    s = run.summary
    look = None
    if quicklook:
        from sitewatch.report.pairs import detect_quicklook

        look = detect_quicklook(before, after, run.out_dir)
    if as_json:
        echo_json({**s, "quicklook": look.to_dict()} if look else s)
        return
    for note in s["notes"]:
        err.print(f"[yellow]note:[/] {esc(note)}")
    reg = s["registration"]
    if reg:
        out.print(esc(f"co-registration: {reg['status']}, shift dy={reg['dy']:+.2f} "
                      f"dx={reg['dx']:+.2f} px ({reg['reason']})"))
    frac = s["changed_fraction"]
    area = s["changed_area_m2"]
    out.print(esc(
        f"{s['method']} on {', '.join(s['bands'])}: threshold {s['threshold']:.4g} "
        f"({s['threshold_rule']}); {s['pixels']['changed']} of {s['pixels']['observed']} "
        f"observed pixels changed" + (f" ({100 * frac:.2f}%)" if frac is not None else "")
        + (f", {area / 1e4:.2f} ha" if area else "") + f", {s['objects']} object(s)"))
    out.print(esc(f"wrote {', '.join(s['outputs'])} to {run.out_dir} in {s['seconds']:.1f} s"))
    if look:
        out.print(esc(f"quicklook: {look.path}: {look.caption}"))


@click.command()
@click.option("--sensor", type=click.Choice(["optical", "sar"]), help="Only this sensor.")
@click.option("--json", "as_json", is_flag=True, help="Full descriptions as JSON.")
@wide_option
def methods(sensor: str | None, as_json: bool, wide: bool) -> None:
    """List the change detectors."""
    from sitewatch.change.base import methods as all_methods
    from sitewatch.change.detect import DEFAULT_METHOD

    found = all_methods(sensor)
    if as_json:
        echo_json([{**m.describe(), "default_for": [k for k, v in DEFAULT_METHOD.items()
                                                    if v == m.name]} for m in found])
        return
    print_table(METHOD_COLUMNS, [
        (m.name + (" *" if DEFAULT_METHOD.get(m.sensor) == m.name else ""), m.sensor,
         m.default_threshold, m.summary) for m in found], wide=wide)
    out.print("* the default for its sensor.  A trained classifier: `sitewatch detect "
              "--model FILE` (see `sitewatch train`).", soft_wrap=False)


#: `methods`: the summary is the free text.
METHOD_COLUMNS = (Col("method"), Col("sensor"), Col("threshold", 1),
                  Col("what it does", 2, text=True, one_line=False, min_width=20))


@click.command()
@click.option("--pair", "pairs", nargs=3, multiple=True,
              type=click.Path(exists=True), metavar="BEFORE AFTER LABEL",
              help="A labelled pair; LABEL is a single-band raster on BEFORE's grid. "
                   "Repeatable.")
@click.option("--change-value", type=float, default=1, show_default=True,
              help="LABEL pixels equal to this are change; all others no change.")
@click.option("--bands", help="Comma-separated bands [default: blue..swir22 as available].")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="The model file to write.")
@click.option("--convert", "convert", type=click.Path(exists=True, dir_okay=False),
              metavar="OLD_MODEL", help="Instead of training: re-save a model file in the "
              "current format (a legacy pickle file needs --trust-model).")
@click.option("--trust-model", is_flag=True, help="With --convert: load a legacy model "
              "file too; " + TRUST_RISK)
@click.option("--model-type", type=click.Choice(["cnn", "gbt"]),
              help="cnn: a fully convolutional change network (FC-Siam-diff; the `cnn` "
              "extra, PyTorch); gbt: the per-pixel gradient-boosting classifier (the `learn` "
              "extra) [default: gbt when its extra is installed (it scores better on OSCD), "
              "else cnn when PyTorch is].")
@click.option("--epochs", type=click.IntRange(min=1), help="cnn: training epochs "
              "[default: 15].")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed (patches, initial weights, samples): same seed, same model.")
@click.option("--overwrite", is_flag=True, help="Replace an existing model file.")
@click.option("--json", "as_json", is_flag=True, help="Print the training summary as JSON.")
@pass_ctx
def train(ctx: Ctx, pairs: tuple[tuple[str, str, str], ...], change_value: float,
          bands: str | None, out_path: str, convert: str | None, trust_model: bool,
          model_type: str | None, epochs: int | None, seed: int,
          overwrite: bool, as_json: bool) -> None:
    """Train a change model from labelled pairs: a change network (cnn) or a per-pixel
    gradient-boosting classifier (gbt).

    Nothing is downloaded: the model learns only from the pairs given.  Use it with
    `sitewatch detect BEFORE AFTER --model FILE`.  Model files hold data, not code; a
    legacy model file (a pickle, from sitewatch before model format 2) is converted with
    `sitewatch train --convert OLD --trust-model --out NEW`.
    """
    if bool(pairs) == bool(convert):
        raise click.UsageError("give --pair (to train) or --convert (to re-save a model)")
    if Path(out_path).exists() and not overwrite:
        raise click.UsageError(f"{out_path} exists; give --overwrite to replace it")
    if convert:
        from sitewatch.change.learned import convert_model

        model = convert_model(convert, out_path, trust_pickle=trust_model)
    else:
        from sitewatch.change.training import default_model_type, train_from_files

        kind = model_type or default_model_type()
        if epochs is not None and kind != "cnn":
            raise click.UsageError("--epochs is for --model-type cnn")
        opts: dict[str, Any] = {"seed": seed}
        if epochs is not None:
            opts["epochs"] = epochs
        with progress_bar(not as_json) as tick:
            model = train_from_files(pairs, out_path, change_value=change_value,
                                     bands=_bands(bands), model_type=kind, progress=tick,
                                     **opts)
    info = model.header()
    if as_json:
        echo_json(info)
        return
    what = (f"converted {convert}" if convert else
            f"trained a {info.get('model_type', 'gbt')} model on {len(pairs)} pair(s)")
    out.print(esc(f"{what}, bands {', '.join(info['bands'])}; wrote {out_path}"))

__all__ = ["detect", "methods", "train"]

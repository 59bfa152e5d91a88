"""Bad inputs through the folder source: corrupt, short, odd-size, empty and non-video files
become error rows (an odd size is fitted, not an error) and the run goes on; a manifest that
points outside its folder is refused before anything is read."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from bench.__main__ import main
from bench.core.results import load_results
from bench.core.video_io import write_video
from bench.run.runner import run


def _frames(n, h, w, seed=0):
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=gen)
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear")


def _png_bytes() -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    plt.imsave(buf, np.zeros((8, 8, 3)), format="png")
    return buf.getvalue()


#: name -> (how to make it, expected status); the good and odd-size clips must be scored
INPUTS = {
    "good": (lambda p: write_video(p, _frames(16, 48, 40), fps=8), "scored"),
    "odd-size": (lambda p: write_video(p, _frames(16, 33, 47, 1), fps=8), "scored"),
    "tiny-frame": (lambda p: write_video(p, _frames(16, 2, 2, 2), fps=8), "scored"),
    "short": (lambda p: write_video(p, _frames(5, 48, 40), fps=8), "error"),
    "corrupt": (lambda p: p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 200), "error"),
    "cut": (lambda p: (write_video(p, _frames(16, 48, 40, 3), fps=8),
                       p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3])), "error"),
    "empty": (lambda p: p.write_bytes(b""), "error"),
    "text": (lambda p: p.write_text("id,prompt\nnot,a video\n"), "error"),
    "image": (lambda p: p.write_bytes(_png_bytes()), "error"),
    "folder": (lambda p: p.mkdir(), "error"),
    "missing": (lambda p: None, "error"),
}


def test_bad_inputs_become_error_rows(tmp_path, faults, run_config):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name, (make, _) in INPUTS.items():
        make(folder / f"{name}.mp4")
    (folder / "manifest.csv").write_text(
        "id,prompt\n" + "".join(f"{name},clip {name}\n" for name in INPUTS))
    bad = [n for n, (_, want) in INPUTS.items() if want == "error"]
    with faults.inject("bad input video", len(bad) + 2):  # + odd sizes
        summary = run(run_config(tmp_path / "out", tmp_path / "cache",
                                 source=f"folder:{folder}", limit=None, methods="dct-qim",
                                 attacks="identity"))
        rows = load_results(summary.out).rows.set_index("video_id")
        assert sorted(rows.index) == sorted(INPUTS)
        for name, (_, want) in INPUTS.items():
            row = rows.loc[name]
            if want == "error":
                assert row["status"] == "error" and row["error"], name
            else:
                assert row["status"] in ("ok", "unavailable") and row["w_psnr"] > 20, name


ESCAPES = {
    "absolute": "id,prompt,file\na,p,{outside}\n",
    "dot-dot": "id,prompt,file\na,p,../outside.mp4\n",
    "deep dot-dot": "id,prompt,file\na,p,../../../../../../etc/passwd\n",
    "dot-dot inside": "id,prompt,file\na,p,sub/../../outside.mp4\n",
    "id dot-dot": "id,prompt\n../outside,p\n",
    "backslash dot-dot": "id,prompt,file\na,p,..\\outside.mp4\n",
    "windows drive": "id,prompt,file\na,p,C:\\outside.mp4\n",
    "second row": "id,prompt,file\nok,p,ok.mp4\nb,p,../outside.mp4\n",
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_manifest_path_escapes_are_refused(tmp_path, faults, cli_run, capsys, monkeypatch,
                                           case):
    import bench.sources.folder as folder_source

    outside = tmp_path / "outside.mp4"
    write_video(outside, _frames(16, 48, 40), fps=8)
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "ok.mp4", _frames(16, 48, 40), fps=8)
    (folder / "manifest.csv").write_text(ESCAPES[case].format(outside=outside))
    opened = []
    real = folder_source.read_clip_frames
    monkeypatch.setattr(folder_source, "read_clip_frames",
                        lambda path, profile: (opened.append(path), real(path, profile))[1])
    with faults.inject(f"manifest path escape ({case})"):
        code = main(cli_run(tmp_path / "out", tmp_path / "cache", "--source",
                            f"folder:{folder}")[3:])
        assert code == 2 and not opened
        err = capsys.readouterr().err
        assert "manifest.csv:" in err and ("leaves the folder" in err
                                           or "absolute path" in err)

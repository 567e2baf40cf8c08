"""The schema of a run's settings: every key a run reads, with the paper's values.

`configs/celeba.py` (paper settings) and `configs/quickstart.py` start from `base_config()` and
override what differs; `python -m maae_tf.train --config=configs/x.py --config.key=value` overrides
further (a bundled config also by name, wherever the package is installed: `--config=quickstart`). The resolved config is written to `WORKDIR/config.json`, and every later command (evaluate,
export, bench) reads it back with `load_workdir_config`, so nothing drifts from training.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
import sys

import ml_collections

from maae_tf import attributes
from maae_tf.files import write_text_atomic


def bundled_configs_dir() -> str:
    """The folder of the bundled configs (`--config=NAME`): the repository's configs/, installed as
    maae_tf/configs (setup.py), or beside the package in a checkout or an editable install."""
    package = os.path.dirname(os.path.abspath(__file__))
    installed = os.path.join(package, "configs")
    return installed if os.path.isdir(installed) else os.path.join(os.path.dirname(package), "configs")


CONFIGS_DIR = bundled_configs_dir()
DEFAULT_CONFIG = os.path.join(CONFIGS_DIR, "celeba.py")  # the commands' default --config
# The quickstart's data_dir (relative to the working directory): the only folder that
# synthetic.build_if_missing fills, so that a mistyped --config.data_dir is an error, not a new set.
SYNTHETIC_DIR = "data/synthetic"


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.attr = "mouth_open"  # one network per attribute (paper §4.1); snake_case alias or CelebA name
    # settings that differ by attribute, applied over the others once attr is known:
    # {attribute: {key: value}} with nested keys ("loss": {"d_augment": ...}); --config.KEY on the
    # command line still wins (for_attribute)
    c.by_attribute = ml_collections.ConfigDict()
    c.seed = 0

    # --- data (docs/method.md §6) ---
    c.data_dir = ""  # root of a CelebA release layout (img_align_celeba/, list_attr_celeba.txt, ...)
    c.image_size = 128  # S: any multiple of 32
    # Crop of the aligned 178x218 image, relative to its height (top, height) and width (left,
    # width): the AttGAN/STGAN convention 170x170 at (26, 3), so half-size copies work too.
    c.crop_top = 26 / 218
    c.crop_left = 3 / 178
    c.crop_height = 170 / 218
    c.crop_width = 170 / 178
    # Splits (docs/data.md): "official" = list_eval_partition.txt; "paper" = the paper's protocol,
    # split_test_per_attribute test images for `attr` (half positives, half negatives, drawn by
    # `seed` from all images), the rest for training, no val split.
    c.split_protocol = "official"
    c.split_test_per_attribute = 1000
    c.batch_size = 64  # pairs (x1 negative, x2 positive) per step
    c.shuffle_buffer = 2048
    c.synthetic = ml_collections.ConfigDict()
    c.synthetic.build_if_missing = False  # quickstart: build the synthetic set in SYNTHETIC_DIR on first use
    c.synthetic.num = 0
    c.synthetic.seed = 0

    # --- networks (docs/method.md §2, paper Table 1) ---
    c.width = 1.0  # channel widths scale by this factor (tests run at 0.0625-0.25)
    c.latent_channels = 512  # C before the width factor
    c.norm = "none"  # "none" (paper) | "instance"
    c.init = "normal"  # "normal": N(0, 0.02) (paper §4.1) | "glorot" (faster start, docs/method.md §2)
    c.upsample = "transpose"  # "transpose" (Table 1 FLOPs) | "resize" (nearest + conv)
    c.identity = ml_collections.ConfigDict()
    # "imagenet": Keras' VGG16 ImageNet weights (download, cached); "h5": a user's file
    # (identity.weights_path); "random": frozen random weights, for tests and offline quickstarts
    # only, with a warning; "none": no F_ID and no L_ID (needs loss.alpha_id = 0).
    c.identity.source = "imagenet"
    c.identity.weights_path = ""

    # --- partial dilated layer and δ (docs/method.md §3, §4) ---
    c.delta_mask = "lattice"  # "lattice" (paper) | "entire" (ablation: δ on the whole map)
    c.delta_max = 5.0  # δ₀
    c.cycle_strength = "random"  # "random": cycle uses δ ~ U(0, δ₀]; "fixed": reuses the ±δ₀ edits
    # which edits D judges (docs/method.md §4): "all" = G(x, +δ0) at the POSITIVE head and G(x, -δ0)
    # at the NEGATIVE head for negatives AND positives; "flipping" = only G(x1, +δ0) and G(x2, -δ0)
    # (it lets the generator invert the attribute whatever δ is)
    c.adversarial_edits = "all"

    # --- losses (paper Eqs. 1-6, docs/method.md §5) ---
    c.loss = ml_collections.ConfigDict()
    c.loss.alpha_vae = 0.1
    c.loss.alpha_gan = 10.0
    c.loss.alpha_id = 20.0
    c.loss.alpha_cycle = 80.0
    c.loss.alpha_mask = 80.0
    c.loss.lambda_kl = 0.1
    c.loss.lambda_rec = 80.0
    # weight of D's extra terms that judge real negatives fake at the POSITIVE head and real
    # positives fake at the NEGATIVE head (0 = the paper's D; docs/method.md §4)
    c.loss.d_other_class = 0.0
    # weight of the attribute-classification term of G (0 = the paper's; with > 0 D gets a third
    # logit P(attribute), learnt on real faces, that every edit must read as δ's sign)
    c.loss.alpha_cls = 0.0
    # weight (times alpha_cls) of the same term on the reconstructions: the attribute logit reads G(x, 0)
    # as x's own label (0 = only the edits; docs/method.md §10)
    c.loss.cls_reconstruction = 0.0
    # weight (times alpha_gan) of G's GAN term on its reconstructions G(x, 0), each judged at the head
    # of x's own class (0 = the paper's: only the edits face D)
    c.loss.alpha_gan_reconstruction = 0.0
    # weight of the keeping edits' L1 to their inputs, |G(x1, -δ0) - x1| + |G(x2, +δ0) - x2| (0 = the
    # paper's: only D's head of their own class judges them; needs adversarial_edits="all")
    c.loss.alpha_keep = 0.0
    # weight of D's terms that judge the (detached) reconstructions G(x, 0) fake at the head of x's
    # class (0 = the paper's D; needs loss.alpha_gan_reconstruction, G's side of the same game)
    c.loss.d_reconstruction = 0.0
    # weight of the L1 of G(x, 0) to x inside the face, |(G(x, 0) - x)·(1 - B)| (0 = the paper's: the
    # face of a reconstruction weighs alpha_vae·lambda_rec = 8, its background alpha_mask more)
    c.loss.face_reconstruction = 0.0
    # γ of D's R1 penalty γ/2·E‖∇x D(x)‖² on real faces, each at the head of its class (0 = the
    # paper's D; docs/method.md §5)
    c.loss.d_r1 = 0.0
    # fraction of the image's height below the face (and hair) that the edits' mask term spares, so
    # that an opening mouth may drop the jaw under the chin the masks were cut at (0 = the paper's
    # L_Mask; the reconstructions keep the whole mask; docs/method.md §10)
    c.loss.mask_jaw = 0.0
    # DiffAugment of every image D sees, real or generated, in both steps: "" (the paper's) or a
    # comma-separated policy of "translation", "cutout" (maae_tf/model/augment.py)
    c.loss.d_augment = ""

    # --- optimisation ---
    c.learning_rate = 1e-4
    c.lr_schedule = "constant"  # "constant" (paper) | "cosine" (decays to 0 at train_steps)
    c.beta_1 = 0.5
    c.beta_2 = 0.999
    # an exponential moving average of G's weights with this momentum (0 = off, the paper's): what
    # evaluation, export, editing and the in-training evaluation use; training goes on from the
    # live weights (docs/method.md §5)
    c.ema_momentum = 0.0
    # the average's momentum grows with the step, min(ema_momentum, (1 + t) / (10 + t)), so the first
    # steps' far-off weights leave it (docs/method.md §5)
    c.ema_warmup = False
    c.train_steps = 200_000
    c.precision = "float32"  # "auto" | "float32" | "mixed_float16" | "mixed_bfloat16" (maae_tf/model/precision.py)

    # --- scale (maae_tf/training/distribute.py) ---
    c.strategy = "auto"  # "auto" | "one_device" | "mirrored" | "multi_worker" | "tpu"; batch_size is global
    c.jit_compile = False  # XLA-compile the training step (one device only)

    # --- bookkeeping ---
    c.log_every = 50  # progress line and TensorBoard scalars
    c.image_every = 1000  # TensorBoard image grids
    c.checkpoint_every = 1000
    c.keep_checkpoints = 3

    # --- evaluation (docs/method.md §7) ---
    c.eval = ml_collections.ConfigDict()
    c.eval.num_images = 500
    c.eval.classifier_steps = 1500
    c.eval.classifier_batch = 32
    c.eval.classifier_dir = ""  # "" = the dataset's cached classifier (maae_tf.evaluation.classifier.default_dir)
    # add the lips' geometry (dlib's 68 landmarks, maae_tf.evaluation.lip_geometry) to the judge of
    # Mouth_Slightly_Open: measured on real faces only (configs/celeba64.py turns it on)
    c.eval.classifier_lip_geometry = False
    # the face-recognition network of the identity metric: "auto" (dlib's ResNet when installed,
    # else the run's own F_ID, labelled) | "dlib" | "training" (the run's own F_ID; "fid" is its old name)
    c.eval.identity_network = "auto"
    c.eval.sweep_steps = 9  # δ values from -δ0 to +δ0 in the sweep strips and the monotonicity check
    c.eval.sweep_images = 100  # images whose sweep the monotonicity check scores
    c.eval.sweep_tolerance = 0.02  # a sweep is monotonic if P(attr) never drops by more than this
    # during training: every `every` steps (0 = never), editing accuracy and background PSNR of a
    # fixed held-out batch of `batch` test images -> TensorBoard (eval/...) and the progress line
    c.eval.every = 0
    c.eval.batch = 32
    return c


def define_config_file(default: str, name: str = "config",
                       help: str = "Config file; override keys with --config.key=value.") -> None:
    """Defines a command's `--name` config file flag (ml_collections, unlocked) whose default file
    is `default`. ml_collections loads the file, and applies its --name.KEY overrides, here: a file
    that does not load or a KEY the config lacks ends in one `error:` line naming it (with the
    closest valid key) and exit 2, instead of ml_collections' traceback."""
    from ml_collections import config_flags

    try:
        config_flags.DEFINE_config_file(name, default, help, lock_config=False)
    except (AttributeError, KeyError, OSError) as e:
        _refuse_config_flag(sys.argv, default, name, e)


def bundled_configs() -> list[str]:
    """The names of the bundled configs, sorted (`celeba`, `celeba64`, `quickstart`)."""
    files = os.listdir(CONFIGS_DIR) if os.path.isdir(CONFIGS_DIR) else []
    return sorted(f[:-len(".py")] for f in files if f.endswith(".py") and not f.startswith("_"))


def config_file(value: str) -> str:
    """The file of a config flag's `value` (FILE, or FILE:ARG for get_config(ARG), ARG kept): a bundled
    config's file for a bare name (`quickstart`) that is not a file here, else `value` as given.
    Raises ValueError for a bare name that no bundled config has."""
    file, colon, arg = value.partition(":")
    if os.path.exists(file) or not re.fullmatch(r"\w+", file):
        return value
    if file not in bundled_configs():
        raise ValueError(f"no bundled config named {file!r} (the bundled configs: {', '.join(bundled_configs())}; "
                         "or give a config file's path)")
    return os.path.join(CONFIGS_DIR, f"{file}.py") + colon + arg


def with_config_files(argv: list[str], name: str = "config") -> list[str]:
    """`argv` with the value of its --`name` flag (`--name=V` or `--name V`) replaced by `config_file(V)`."""
    out = list(argv)
    for i, arg in enumerate(argv[1:], 1):
        if re.match(rf"^--?{name}=", arg):
            flag, _, value = arg.partition("=")
            out[i] = f"{flag}={config_file(value)}"
        elif arg in (f"-{name}", f"--{name}") and i + 1 < len(argv):
            out[i + 1] = config_file(argv[i + 1])
    return out


def run_command(main, config_default: str | None = None, short: dict[str, str] | None = None,
                name: str = "config", positional: bool = False) -> None:
    """absl's app.run of a command's `main`, its flags parsed by `parse_flags` (a bad flag, or an
    argument that is no flag when the command takes no `positional` ones, is one `error:` line and
    exit 2); `short` maps one-letter options to flags (`expand_short_flags`); `config_default` names
    the default file of a `define_config_file(config_default, name)` flag."""
    from absl import app

    def parser(argv):
        rest = parse_flags(argv, config_default, name)
        if len(rest) > 1 and not positional:
            print(f"error: unexpected arguments: {' '.join(rest[1:])}", file=sys.stderr)
            sys.exit(2)
        return rest

    app.run(main, argv=expand_short_flags(sys.argv, short or {}), flags_parser=parser)


def parse_flags(argv: list[str], config_default: str | None = None, name: str = "config") -> list[str]:
    """The arguments left after parsing the flags of `argv` into absl's FLAGS (argv[0] first). A
    flag that is unknown or has a bad value ends in one `error:` line and exit 2, as does, with
    `config_default`, a --`name` config file that does not load (see `define_config_file`) or a
    bundled config's name that does not exist (`config_file`)."""
    from absl import flags

    files = argv
    if config_default is not None:
        try:
            files = with_config_files(argv, name)  # --name=quickstart: the bundled file
        except ValueError as e:  # a name no bundled config has
            _refuse_config_flag(argv, config_default, name, e)
    try:
        rest = flags.FLAGS(files)
        if config_default is not None:
            flags.FLAGS[name].value.keys()  # a file that did not load fails at its first use: now
    except flags.UnrecognizedFlagError as e:
        print(f"error: unrecognized arguments: {e.flagvalue}", file=sys.stderr)
        sys.exit(2)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except (AttributeError, KeyError, OSError) as e:
        _refuse_config_flag(argv, config_default, name, e)
    return rest


def expand_short_flags(argv: list[str], short: dict[str, str]) -> list[str]:
    """`argv` with each short option of `short` (`{"-o": "out"}`) spelt as its absl flag: `-o X`
    becomes `--out=X` (absl has no one-letter options; `-oX` stays as it is, a long flag to absl)."""
    out, rest = argv[:1], iter(argv[1:])
    for arg in rest:
        out.append(f"--{short[arg]}={next(rest, '')}" if arg in short else arg)
    return out


def _refuse_config_flag(argv, default: str, name: str, error: Exception):
    print(f"error: {describe_config_flag_error(argv, default, name, error)}", file=sys.stderr)
    sys.exit(2)


def describe_config_flag_error(argv, default: str, name: str, error: Exception) -> str:
    """One line naming what is wrong on the command line `argv`: the --`name` file (missing or
    failing to load) or the first --`name`.KEY that its config does not have."""
    given, overrides = None, []
    for i, arg in enumerate(argv[1:], 1):
        if arg in (f"-{name}", f"--{name}") and i + 1 < len(argv):
            given = argv[i + 1]
        elif re.match(rf"^--?{name}=", arg):
            given = arg.split("=", 1)[1]
        m = re.match(rf"^--?(?:no)?{name}\.([^=]+)", arg)
        if m:
            overrides.append(m.group(1))
    path = given if given is not None else default
    flag = f"--{name}={path}" if given is not None else f"--{name} (default {path})"
    try:
        file, _, arg = config_file(path).partition(":")
    except ValueError as e:
        return f"{flag}: {e}"
    if not os.path.isfile(file):
        configs = [f"{n}.py" for n in bundled_configs()]
        return (f"{flag}: no such config file" + (f" (the bundled configs, in {CONFIGS_DIR}: {', '.join(configs)}; "
                                                  f"by name: --{name}=NAME)" if configs else ""))
    try:
        spec = importlib.util.spec_from_file_location(f"_{name}_file", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config = module.get_config(*([arg] if arg else []))
    except Exception as e:  # noqa: BLE001  (any failure of the user's file is reported, in one line)
        return f"{flag}: cannot load the config file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    valid = sorted(_key_paths(config))
    for key in overrides:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = (f"; did you mean --{name}.{close[0]}?" if close
                    else "; the keys are listed in maae_tf/config.py (base_config)")
            return f"--{name}.{key}: {file} has no key {key!r}{hint}"
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"{flag}: {first}"


def for_attribute(c: ml_collections.ConfigDict, overridden=()) -> ml_collections.ConfigDict:
    """A copy of c with c.by_attribute's settings for c.attr applied, except the dotted keys in
    `overridden` (those the user set on the command line); c itself is left as it was."""
    c = c.copy_and_resolve_references()
    name = attributes.resolve(c.attr)
    for attr, settings in c.by_attribute.items():
        if _by_attribute_name(attr) != name:
            continue
        for key in _key_paths(settings):
            value = _lookup(settings, key)
            if isinstance(value, ml_collections.ConfigDict) or key in overridden:
                continue
            parent, _, leaf = key.rpartition(".")
            target = _lookup(c, parent) if parent else c
            if leaf not in target:
                raise ValueError(f"by_attribute.{attr}.{key}: the config has no key {key!r}")
            target[leaf] = value
    return c


def _by_attribute_name(attr: str) -> str:
    """The CelebA name of a key of config.by_attribute; a key that names no attribute is refused
    (a misspelt name would otherwise silently apply to no run)."""
    try:
        return attributes.resolve(attr)
    except ValueError as e:
        raise ValueError(f"by_attribute.{attr}: {e}") from None


def _lookup(config, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


def _key_paths(config, prefix: str = ""):
    """Every key of `config` as a dotted path (the nested ConfigDicts' keys too)."""
    for key, value in config.items():
        yield prefix + key
        if isinstance(value, ml_collections.ConfigDict):
            yield from _key_paths(value, prefix + key + ".")


def save_workdir_config(c: ml_collections.ConfigDict, workdir: str) -> str:
    """Writes `workdir/config.json` atomically, stamped with CONFIG_VERSION; returns its path."""
    path = os.path.join(workdir, "config.json")
    saved = {VERSION_KEY: CONFIG_VERSION, **c.to_dict()}
    write_text_atomic(path, json.dumps(saved, indent=2, sort_keys=True))
    return path


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a run was trained with (`workdir/config.json`), upgraded to CONFIG_VERSION.

    Saved values go over today's defaults, so a setting the saved file lacks reads as its default;
    UPGRADES first bring a file of an older version to what that run did."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: is {workdir!r} a maae_tf training workdir?")
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    version = saved.pop(VERSION_KEY, 1)
    if version > CONFIG_VERSION:
        raise ValueError(f"{path}: config version {version} is newer than this code's ({CONFIG_VERSION})")
    for v in range(version, CONFIG_VERSION):
        UPGRADES[v](saved)
    config = base_config()
    _merge(config, saved)
    return config


def _upgrade_1_to_2(saved: dict) -> None:
    # Version 1 files may lack adversarial_edits: such a run judged only the flipping edits.
    saved.setdefault("adversarial_edits", "flipping")


# The layout of a saved config.json: VERSION_KEY holds it (a file without the key is version 1),
# and UPGRADES[v] turns a version-v file into a version-(v + 1) one, in place.
VERSION_KEY = "config_version"
CONFIG_VERSION = 2
UPGRADES = {1: _upgrade_1_to_2}


def _merge(config: ml_collections.ConfigDict, values: dict) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(config.get(key), ml_collections.ConfigDict):
            _merge(config[key], value)
        else:
            config[key] = value

"""The one typed run configuration.

The launch form, the REST API, the CLI and the checkpoint all read and write this model; a run
folder keeps it as ``config.json``. Unknown keys and out-of-range values are rejected with the
dotted name of the field, so a user can fix the exact key they typed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from trainer.files import write_atomic
from trainer.models.registry import arch_info, check_arch
from trainer.models.stages import NO_STAGES

# The form's short list, shallow to deep: torchvision's ResNets, each beside timm's ResNet-D (the paper's
# tweak). Any other torchvision ResNet or timm model name is accepted too, checked against what is installed.
ARCHS: tuple[str, ...] = tuple(f"resnet{depth}{tweak}" for depth in (18, 34, 50, 101, 152) for tweak in ("", "d"))


def _known_arch(name: str) -> str:
    if name in ARCHS:
        return name
    try:
        return check_arch(name)
    except ValueError as exc:
        raise PydanticCustomError("unknown_arch", str(exc)) from None


Arch = Annotated[str, AfterValidator(_known_arch)]

LINEAR_SCALING_BATCH = 256  # the paper's reference batch: lr x batch_size / 256

MAX_INT32 = 2**31 - 1  # seeds and run ids: what torch's generators and the database's INTEGER columns hold
MAX_PATH = 4096  # PATH_MAX on Linux
# Control characters (C0, DEL, C1) and lone surrogates: no name or path a person types holds one, and
# NUL cannot reach the file system or PostgreSQL at all.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
PRINTABLE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
MAX_EPOCHS = 1000
MAX_DIVISOR = 1e6


# --- strict scalars -----------------------------------------------------------------------------


def _number(value: Any) -> Any:
    """JSON's true and false are not numbers, and neither are NaN or the infinities (1e309 reads as one)."""
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "must be a number, not true or false")
    if isinstance(value, float | str) and not _finite(value):
        raise PydanticCustomError("finite_number", "must be a finite number")
    return value


def _finite(value: float | str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:  # not a number at all: pydantic's own check says so
        return True


def _printable(value: str) -> str:
    found = CONTROL_CHARACTERS.search(value)
    if found:
        raise PydanticCustomError(
            "control_character",
            "must not contain control characters ({character} at position {position})",
            {"character": repr(found.group())[1:-1], "position": found.start()},
        )
    return value


# Bounds of a number go before NUMBER in an Annotated: after it, pydantic writes them into the JSON
# schema as "ge" and "le", which JSON Schema does not know (and generated clients drop).
NUMBER = BeforeValidator(_number)
Int = Annotated[int, NUMBER]
Bool = Annotated[bool, Strict()]  # true or false; not 0, 1, "yes" or "on"
Float = Annotated[float, NUMBER, Field(allow_inf_nan=False)]
# The pattern tells the OpenAPI schema what _printable refuses; _printable gives the message.
_PRINTABLE_SCHEMA = Field(json_schema_extra={"pattern": PRINTABLE_PATTERN})
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_printable), _PRINTABLE_SCHEMA]
PathText = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_PATH), AfterValidator(_printable), _PRINTABLE_SCHEMA
]


class ConfigError(ValueError):
    """A configuration that cannot be used; ``errors`` maps dotted field names to messages."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    root: PathText = Field("data", description="a folder holding CUB_200_2011/, or that folder itself")
    split: Literal["seed", "official"] = Field(
        "seed",
        description="seed: the report's per-class 80/20 of sorted files; "
        "official: the archive's train_test_split.txt. Both hold out 10% of train as validation",
    )
    split_seed: Int = Field(1234, ge=0, le=MAX_INT32, description="seed of the validation hold-out (the report's 1234)")
    valid_fraction: Float = Field(
        0.1, gt=0, lt=1, description="share (0-1) of the training split held out for validation"
    )
    image_size: Int = Field(224, ge=16, le=1024, description="side of the square training crop, in pixels")
    num_workers: Int = Field(2, ge=0, le=64, description="data loader worker processes")
    pipeline: Literal["fast", "reference"] = Field(
        "fast",
        description="fast: decoded uint8 cache and batched augmentation on the training device; "
        "reference: the report's per-image PIL transforms",
    )


class ModelConfig(_Strict):
    arch: Arch = Field(
        "resnet50",
        description="a torchvision ResNet (resnet18 ... resnet152, resnext50_32x4d, ...) or any timm model "
        "(resnet50d, efficientnet_b0, a pretrained tag such as resnet50.a1_in1k)",
        examples=list(ARCHS),
    )
    pretrained: Bool = Field(True, description="start from torchvision's IMAGENET1K_V1 weights")
    weights_path: PathText | None = Field(
        None,
        description="a local ImageNet state_dict instead of the torchvision cache (under the data roots)",
    )
    zero_init_residual: Bool = Field(False, description="zero the last BatchNorm gamma of each residual block")


class LayerLrDivisors(_Strict):
    """The learning rate of each group is ``optim.lr / divisor`` (the report's discriminative rates)."""

    stem: Float = Field(10.0, gt=0, le=MAX_DIVISOR, description="conv1 and bn1")
    layer1: Float = Field(8.0, gt=0, le=MAX_DIVISOR, description="divisor of optim.lr for layer1")
    layer2: Float = Field(6.0, gt=0, le=MAX_DIVISOR, description="divisor of optim.lr for layer2")
    layer3: Float = Field(4.0, gt=0, le=MAX_DIVISOR, description="divisor of optim.lr for layer3")
    layer4: Float = Field(2.0, gt=0, le=MAX_DIVISOR, description="divisor of optim.lr for layer4")
    fc: Float = Field(2.0, gt=0, le=MAX_DIVISOR, description="divisor of optim.lr for the classifier")


class OptimConfig(_Strict):
    name: Literal["adam", "sgd"] = "adam"
    lr: Float = Field(1e-3, gt=0, le=10, description="FOUND_LR, the rate of a divisor-1 group")
    layer_lr_divisors: LayerLrDivisors = Field(default_factory=LayerLrDivisors)
    momentum: Float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: Float = Field(0.0, ge=0, le=1, description="L2 weight decay factor; 0 = none")
    no_bias_decay: Bool = Field(False, description="no weight decay on biases and norm parameters")
    linear_scaling: Bool = Field(
        False,
        description="multiply every rate by batch_size / 256 (Bag of Tricks' linear scaling rule); "
        "never implied by the number of training processes",
    )


class ScheduleConfig(_Strict):
    name: Literal["onecycle", "cosine", "constant"] = "onecycle"
    warmup_epochs: Float = Field(
        0.0, ge=0, le=MAX_EPOCHS, description="linear warmup before cosine or constant; 0 = none"
    )


def _teacher(value: Any) -> Any:
    """A run id (an int, or ASCII digits as a form sends it) or a run folder; anything else is refused here,
    with one message, rather than by each branch of a union."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_INT32):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        raise PydanticCustomError("teacher_reference", "run ids run from 1 to {largest}", {"largest": MAX_INT32})
    if not isinstance(value, str):
        raise PydanticCustomError("teacher_reference", "expected a run id or a run folder")
    _printable(value)
    if not value.strip():
        raise PydanticCustomError("teacher_reference", "expected a run id or a run folder, got an empty text")
    if len(value) > MAX_PATH:
        raise PydanticCustomError(
            "teacher_reference", "a run folder path has at most {limit} characters", {"limit": MAX_PATH}
        )
    if value.isdigit() and not value.isascii():
        # "²" or "١": str.isdigit() says digits, yet they name neither a run nor a folder anyone made.
        raise PydanticCustomError(
            "teacher_reference",
            "expected a run id in ASCII digits (e.g. 12) or a run folder, got {value}",
            {"value": repr(value)},
        )
    return value


TeacherRef = Annotated[
    str | int | None,
    BeforeValidator(_teacher),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": MAX_PATH, "pattern": PRINTABLE_PATTERN},
                {"type": "integer", "minimum": 1, "maximum": MAX_INT32},
                {"type": "null"},
            ]
        }
    ),
]


class KDConfig(_Strict):
    teacher: TeacherRef = Field(
        None, description="a finished run folder (or, through the API, a run id); null = no distillation"
    )
    alpha: Float = Field(0.1, ge=0, le=1, description="weight of the task loss")
    temperature: Float = Field(10.0, gt=0, le=100, description="softmax temperature of teacher and student")


class TricksConfig(_Strict):
    label_smoothing: Float = Field(
        0.0, ge=0, lt=1, description="probability mass (0-1) spread over the other classes; 0 = off"
    )
    mixup_alpha: Float = Field(0.0, ge=0, le=100, description="Beta(a, a) for the mixing weight; 0 = off")
    kd: KDConfig = Field(default_factory=KDConfig)


DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
DEVICE = re.compile(DEVICE_PATTERN)


def _device(value: str) -> str:
    # A message a person can act on, instead of pydantic's quoting of the pattern.
    if not DEVICE.fullmatch(value):
        raise PydanticCustomError("device", "must be auto, cpu, cuda or cuda:N (N the GPU's index, e.g. cuda:1)")
    return value


class RuntimeConfig(_Strict):
    device: Annotated[str, AfterValidator(_device)] = Field(
        "auto",
        description="auto (a GPU when CUDA can be used, else the CPU, and the run says why), cpu, cuda or "
        "cuda:N (N among the visible GPUs)",
        json_schema_extra={"pattern": DEVICE_PATTERN},
    )
    amp: Bool = Field(True, description="bf16 autocast on CUDA (ignored on CPU)")
    channels_last: Bool = Field(True, description="channels_last memory format on CUDA (ignored on CPU)")
    compile: Bool = Field(
        False,
        description="torch.compile the training step for one static shape: each epoch then trains only full "
        "batches, dropping the last partial one that the report's loader kept (the images left out change "
        "with each epoch's shuffle), so results differ slightly from a run without it; evaluation stays "
        "eager, and the batch augmentation is compiled on the CPU only (on a GPU it does not pay)",
    )
    sync_batchnorm: Bool = Field(
        True,
        description="when several processes train, BatchNorm normalizes over the whole global batch "
        "(SyncBatchNorm), as one process would; no effect on one process",
    )
    step_log_every: Int = Field(10, ge=1, le=1_000_000, description="report loss and learning rate every N steps")


class RunConfig(_Strict):
    name: Name = "run"
    seed: Int = Field(1234, ge=0, le=MAX_INT32)
    epochs: Int = Field(10, ge=1, le=MAX_EPOCHS)
    batch_size: Int = Field(64, ge=1, le=4096)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    tricks: TricksConfig = Field(default_factory=TricksConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @model_validator(mode="after")
    def _check_combinations(self) -> RunConfig:
        if self.schedule.warmup_epochs and self.schedule.name == "onecycle":
            raise ValueError("schedule.warmup_epochs: OneCycle has its own warmup; set it to 0 or use cosine/constant")
        if self.model.zero_init_residual and self.model.pretrained:
            raise ValueError(
                "model.zero_init_residual: pretrained weights overwrite it; "
                "it only applies when training from scratch (model.pretrained false)"
            )
        if self.schedule.warmup_epochs >= self.epochs:
            raise ValueError(f"schedule.warmup_epochs: must be shorter than epochs ({self.epochs})")
        return self

    @model_validator(mode="after")
    def _check_arch_takes_the_settings(self) -> RunConfig:
        """A model without ResNet's stages or residual blocks can take neither per-stage rates nor zero-init."""
        arch, per_stage = self.model.arch, len(set(self.optim.layer_lr_divisors.model_dump().values())) > 1
        if arch in ARCHS or not (per_stage or self.model.zero_init_residual):
            return self  # the short list is all ResNets: nothing to import to know
        info = arch_info(arch)
        if self.model.zero_init_residual and not info.zero_init_residual:
            raise ValueError(f"model.zero_init_residual: {arch} has no residual blocks whose last norm it could zero")
        if per_stage and not info.per_stage_rates:
            raise ValueError(f"optim.layer_lr_divisors: {arch} {NO_STAGES}")
        return self

    @property
    def lr_scale(self) -> float:
        """The factor on every learning rate: batch_size / 256 under linear scaling, else 1."""
        return self.batch_size / LINEAR_SCALING_BATCH if self.optim.linear_scaling else 1.0

    def rank_batch_size(self, world_size: int) -> int:
        """Each process's share of ``batch_size``, the global batch; ConfigError when it does not divide."""
        if self.batch_size % world_size:
            raise ConfigError(
                {
                    "batch_size": f"{self.batch_size} does not divide over {world_size} processes: "
                    f"each takes an equal share of the global batch, so use a multiple of {world_size}"
                }
            )
        return self.batch_size // world_size

    # --- construction -------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Validate a nested dict, raising ConfigError keyed by dotted field names."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(validation_errors(exc)) from None

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
        """Read a .json or .yaml file, apply dotted overrides, validate."""
        values = read_config_file(path)
        return cls.from_dict(apply_overrides(values, overrides or {}))

    def save(self, path: str | Path) -> None:
        # Whole or not at all: several hosts may prepare one shared run folder at the same moment.
        write_atomic(Path(path), self.model_dump_json(indent=2) + "\n")

    def fingerprint(self) -> str:
        """Hash of everything that changes the result: two runs with one fingerprint are replicates.

        The name and the runtime knobs that do not change the numbers (device, worker count,
        logging) are left out, so a rerun under another name is recognised as identical.
        """
        values = self.model_dump(mode="json")
        values.pop("name")
        values["data"].pop("num_workers")
        values["runtime"].pop("device")
        values["runtime"].pop("step_log_every")
        if not values["runtime"]["compile"]:
            # On, compile changes the numbers (it drops the last partial batch); off, it is left out, so
            # the fingerprints of runs stored without the key stand.
            values["runtime"].pop("compile")
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def validation_errors(exc: ValidationError) -> dict[str, str]:
    """Pydantic's errors as {dotted field: message}; model-level checks name their field first."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        message = error_message(error)
        if error["type"] == "value_error" and ": " in message:
            # Our model validators say "field.name: what is wrong"; pydantic prefixes "Value error, ".
            location, _, message = message.removeprefix("Value error, ").partition(": ")
        errors[location or "config"] = message
    return errors


def error_message(error: ErrorDetails) -> str:
    """Pydantic's message, in this project's words where ours say more."""
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "finite_number":  # "nan" or "inf" as text, which parses before our check sees it
        return "must be a finite number"
    return error["msg"]


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError({"config": f"no such file: {path}"})
    text = path.read_text()
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError({"config": f"{path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}"}) from None
    if not isinstance(values, dict):
        raise ConfigError({"config": f"{path} must hold a mapping of keys to values"})
    return values


def apply_overrides(values: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``values`` with dotted keys (``tricks.kd.alpha``) set.

    A dotted key must name a field of RunConfig; a typo fails here instead of being ignored.
    """
    result = json.loads(json.dumps(values, default=str))
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        model: type[BaseModel] = RunConfig
        node = result
        for depth, part in enumerate(parts):
            field = model.model_fields.get(part)
            if field is None:
                raise ConfigError({dotted: "unknown key"})
            if depth == len(parts) - 1:
                node[part] = value
                break
            annotation = field.annotation
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                raise ConfigError({dotted: f"{'.'.join(parts[: depth + 1])} has no sub-keys"})
            model = annotation
            child = node.get(part)
            node = node.setdefault(part, {}) if isinstance(child, dict) or child is None else child
            if not isinstance(node, dict):
                raise ConfigError({dotted: f"{'.'.join(parts[: depth + 1])} is not a mapping"})
    return result


def dotted_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """Every key ``apply_overrides`` takes: each field, and each section ("tricks.kd") as a whole."""
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += dotted_keys(annotation, f"{prefix}{name}.")
    return keys

"""What the traffic of a load test looks like, and when it arrives.

* :mod:`.spec`: the workload file (TOML) and its validation;
* :mod:`.lengths`: input and output length distributions;
* :mod:`.tokens` and :mod:`.synthetic`: token counters and exact-length prompts;
* :mod:`.calibration`: the words a server counts as one token each, measured before load;
* :mod:`.datasets`: ShareGPT and JSONL prompt files;
* :mod:`.traffic`: one user's stream of requests and conversations;
* :mod:`.arrivals`: open-loop arrival schedules.
"""

from sagellm_users._workloads.arrivals import ArrivalPlan, ArrivalSchedule
from sagellm_users._workloads.calibration import WordCalibration, calibrate
from sagellm_users._workloads.datasets import Conversation, load_dataset
from sagellm_users._workloads.lengths import LengthSpec, length_sampler, parse_length
from sagellm_users._workloads.spec import WorkloadSpec, load_workload, validate_workload
from sagellm_users._workloads.synthetic import PromptSynthesizer, SyntheticPrompt
from sagellm_users._workloads.tokens import (
    EstimateCounter,
    TokenCounter,
    TokenizerCounter,
    load_tokenizer,
)
from sagellm_users._workloads.traffic import UserTraffic, Workload

__all__ = [
    "ArrivalPlan",
    "ArrivalSchedule",
    "Conversation",
    "EstimateCounter",
    "LengthSpec",
    "PromptSynthesizer",
    "SyntheticPrompt",
    "TokenCounter",
    "TokenizerCounter",
    "UserTraffic",
    "WordCalibration",
    "Workload",
    "WorkloadSpec",
    "calibrate",
    "length_sampler",
    "load_dataset",
    "load_tokenizer",
    "load_workload",
    "parse_length",
    "validate_workload",
]

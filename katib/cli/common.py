"""What `validate` and `render` share: katib-config and the ConfigMaps templates come from."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Iterable

from katib.api import constants as c
from katib.cli.inputs import Inputs, one_line
from katib.config import KatibConfig, get_configmap_from, default_trial_templates


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--katib-config", metavar="PATH",
                        help="YAML file holding the katib-config ConfigMap (default: the shipped "
                             "config/katib-config.yaml)")
    parser.add_argument("--katib-namespace", metavar="NS",
                        default=os.environ.get("KATIB_CORE_NAMESPACE") or c.DEFAULT_KATIB_NAMESPACE,
                        help="Katib namespace: where the default trial-template ConfigMap lives "
                             "(default: $KATIB_CORE_NAMESPACE or kubeflow)")


def load_config(args: argparse.Namespace) -> KatibConfig:
    """The katib-config to check against; katib.config.ConfigError when it cannot be read."""
    return KatibConfig.load(args.katib_config)


def configmaps(args: argparse.Namespace, inputs: Inputs) -> Callable[[str, str], dict | None]:
    """Lookup over the shipped trial-template ConfigMaps, then those found in the input."""
    return get_configmap_from([*default_trial_templates(args.katib_namespace), *inputs.configmaps])


def print_lines(lines: Iterable[str], *, stream=None) -> None:
    stream = stream or sys.stderr
    for line in lines:
        print(one_line(line), file=stream)

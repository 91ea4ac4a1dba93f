"""Helpers shared by the command handlers."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

def resolve_entry(name: str, zoo):
    from ..zoo import get_entry

    return get_entry(name, zoo) if zoo else get_entry(name)

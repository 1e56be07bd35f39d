"""Training tasks: each module registers one `TrainingTask` (and its config class) on import.

Importing this package imports every task module, like `asrtools.models` does for encoders.
"""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

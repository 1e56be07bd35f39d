"""Models: encoders (selected by name), the transducer (decoder, joiner) and others.

Importing this package imports every encoder module so that they register themselves.
"""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if _module.name.startswith("enc_"):
        importlib.import_module(f"{__name__}.{_module.name}")

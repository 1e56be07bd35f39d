"""Small helpers shared by asrtools' scripts and commands that belong to no one subsystem.

The bottom layer (see .importlinter): nothing here imports another asrtools package.
`asrtools.utils.provenance` records the code, software and hardware of the process that made a
set of numbers; `asrtools.utils.progress` reports the progress of long loops.
"""

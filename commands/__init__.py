"""The command layer: the ``scenario-upscale`` CLI, the demo's terminal UI and the local Prefect
server it starts. The only layer that starts processes and prints to a terminal."""

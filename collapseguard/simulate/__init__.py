"""Model-collapse simulator: worlds, mixing policies, the loop, theory, sweeps and reports."""

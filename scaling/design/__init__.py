"""The design review by simulation: can a planned study identify the laws it will fit?
Draws from assumed laws at the design's x values, refitted with the analysis's own fitter."""

from scaling.design.simulate import Assumptions, Design, DesignSimulation, simulate_design

__all__ = ["Assumptions", "Design", "DesignSimulation", "simulate_design"]

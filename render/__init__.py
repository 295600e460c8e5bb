"""Rendering: turning a head and a FaceState into pictures, and pictures into video.

For now this holds the video encoder; the Gaussian head and its renderer
backends (reference, cpu, gl) arrive with the renderer work.
"""

from render.video import VideoWriter

__all__ = ["VideoWriter"]

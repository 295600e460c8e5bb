"""Animation: speech audio, mannerisms, emotions and external sources into one FaceState stream.

Empty until the animation work lands; see DESIGN.md for what it will own.
"""

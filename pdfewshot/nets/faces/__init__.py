"""Face networks ported from face-api.js (``@vladmandic/face-api``, MIT), as plain Paddle layers with one
weights reader each (:mod:`pdfewshot.nets.tfjs`):

- :mod:`.descriptor`: FaceRecognitionNet, face-api.js's port of dlib's ResNet face descriptor (128-d, from a
  150x150 face chip); a backbone like the others.
- :mod:`.detector`: the tiny face detector (a tiny YOLOv2 with separable convolutions), with the package's
  box decoding and non-maximum suppression.
- :mod:`.landmarks`: the 68-point face landmarks net (112x112 face crop in, 68 points out).
- :mod:`.search`: where the detector looks at an image (a grey border for faces that fill the frame, the
  image near its own size for small ones, turned for tilted heads) and what landmarks must look like.
- :mod:`.finder`: image -> faces, each with its box, landmarks and aligned chip.
"""

"""The FID Inception network: Inception v3 (Szegedy et al., 2016) as TensorFlow's graph of
2015-12-05 has it, the network behind the FID (Heusel et al., 2017) and Inception Score
(Salimans et al., 2016) figures of papers. Written out in torch so that the ported weights
file of pytorch-fid, pt_inception-2015-12-05-6726825d.pth (URL below), loads into it by
its parameter names.

    stem     3 x 299 x 299 -> 5 conv + 2 max-pool -> 192 x 35 x 35
    Mixed_5  3 blocks A (four branches: 1x1, 5x5, two 3x3, pool)       -> 288 x 35 x 35
    Mixed_6  block B (stride 2), 4 blocks C (7x7 factored as 1x7, 7x1)  -> 768 x 17 x 17
    Mixed_7  block D (stride 2), 2 blocks E (3x3 split into 1x3 | 3x1)  -> 2048 x 8 x 8
    head     global average pool -> the 2048-d features of FID; fc -> 1008 logits for IS,
             without fc's bias, as the reference code of IS takes them (Salimans et al.'s, TTUR's,
             torch-fidelity's): the bias shifts each class's logit and would change the score

What sets this graph apart from torchvision's ImageNet Inception v3: the average pools of
the blocks leave the padding out of the mean (TensorFlow's SAME pooling), the last block E
pools with a max instead of an average, and the classifier has 1008 outputs. Every conv
has no bias and is followed by batch norm (eps 0.001) and a ReLU. Its own file: one
network, read beside pytorch-fid's.
"""
from collections import OrderedDict
import torch
import torch.nn as nn
import torch.nn.functional as F

WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS}"
ROW7 = dict(k=(1, 7), padding=(0, 3))                           # 7x7 factored: a 1x7 row
COL7 = dict(k=(7, 1), padding=(3, 0))                           # and a 7x1 column
ROW3 = dict(k=(1, 3), padding=(0, 1))                           # 3x3 split: 1x3
COL3 = dict(k=(3, 1), padding=(1, 0))                           # | 3x1


def conv(cin, cout, k, stride=1, padding=0):
    """conv (no bias) -> batch norm -> ReLU, named `conv` and `bn` as in the weights
    file."""
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(cin, cout, k, stride, padding, bias=False),
                                     bn=nn.BatchNorm2d(cout, eps=0.001), relu=nn.ReLU()))


def tf_avg_pool(x):
    # TF's SAME pool: padding not counted
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


class A(nn.Module):                                              # Mixed_5b/c/d, 35 x 35
    def __init__(self, cin, pool):
        super().__init__()
        self.branch1x1 = conv(cin, 64, 1)
        self.branch5x5_1 = conv(cin, 48, 1)
        self.branch5x5_2 = conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = conv(cin, 64, 1)
        self.branch3x3dbl_2 = conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = conv(96, 96, 3, padding=1)
        self.branch_pool = conv(cin, pool, 1)

    # (B, cin, 35, 35) -> (B, 224 + pool, ...)
    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        d3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, d3, self.branch_pool(tf_avg_pool(x))], 1)


class B(nn.Module):                                              # Mixed_6a: 35 -> 17
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = conv(cin, 64, 1)
        self.branch3x3dbl_2 = conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = conv(96, 96, 3, stride=2)

    # (B, 288, 35, 35) -> (B, 768, 17, 17)
    def forward(self, x):
        d3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), d3, F.max_pool2d(x, 3, 2)], 1)


class C(nn.Module):                                              # Mixed_6b..e, 17 x 17
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = conv(cin, 192, 1)
        self.branch7x7_1 = conv(cin, c7, 1)
        self.branch7x7_2 = conv(c7, c7, **ROW7)
        self.branch7x7_3 = conv(c7, 192, **COL7)
        self.branch7x7dbl_1 = conv(cin, c7, 1)
        self.branch7x7dbl_2 = conv(c7, c7, **COL7)
        self.branch7x7dbl_3 = conv(c7, c7, **ROW7)
        self.branch7x7dbl_4 = conv(c7, c7, **COL7)
        self.branch7x7dbl_5 = conv(c7, 192, **ROW7)
        self.branch_pool = conv(cin, 192, 1)

    # (B, 768, 17, 17) -> same
    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d7 = x
        for i in range(1, 6):
            d7 = getattr(self, f"branch7x7dbl_{i}")(d7)
        return torch.cat([self.branch1x1(x), b7, d7, self.branch_pool(tf_avg_pool(x))], 1)


class D(nn.Module):                                              # Mixed_7a: 17 -> 8
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = conv(cin, 192, 1)
        self.branch3x3_2 = conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = conv(cin, 192, 1)
        self.branch7x7x3_2 = conv(192, 192, **ROW7)
        self.branch7x7x3_3 = conv(192, 192, **COL7)
        self.branch7x7x3_4 = conv(192, 192, 3, stride=2)

    # (B, 768, 17, 17) -> (B, 1280, 8, 8)
    def forward(self, x):
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, 2)], 1)


class E(nn.Module):                                              # Mixed_7b/c, 8 x 8
    def __init__(self, cin, max_pool):
        super().__init__()
        self.branch1x1 = conv(cin, 320, 1)
        self.branch3x3_1 = conv(cin, 384, 1)
        self.branch3x3_2a = conv(384, 384, **ROW3)
        self.branch3x3_2b = conv(384, 384, **COL3)
        self.branch3x3dbl_1 = conv(cin, 448, 1)
        self.branch3x3dbl_2 = conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = conv(384, 384, **ROW3)
        self.branch3x3dbl_3b = conv(384, 384, **COL3)
        self.branch_pool = conv(cin, 192, 1)
        # the 2015 graph's last block: a max
        self.max_pool = max_pool

    # (B, cin, 8, 8) -> (B, 2048, 8, 8)
    def forward(self, x):
        b3 = self.branch3x3_1(x)
        d3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pool = F.max_pool2d(x, 3, 1, 1) if self.max_pool else tf_avg_pool(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(d3), self.branch3x3dbl_3b(d3),
                          self.branch_pool(pool)], 1)


class InceptionV3(nn.Module):
    """Images (B, 3, H, W) in [0, 1] -> (2048-d pool features, 1008 logits without fc's
    bias)."""

    def __init__(self, num_classes=1008):
        super().__init__()
        # (3, 299, 299) -> (32, 149, 149)
        self.Conv2d_1a_3x3 = conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = conv(32, 32, 3)                    # -> (32, 147, 147)
        # -> (64, 147, 147), max-pool -> 73
        self.Conv2d_2b_3x3 = conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = conv(64, 80, 1)                    # -> (80, 73, 73)
        # -> (192, 71, 71), max-pool -> 35
        self.Conv2d_4a_3x3 = conv(80, 192, 3)
        self.Mixed_5b = A(192, 32)
        self.Mixed_5c = A(256, 64)
        self.Mixed_5d = A(288, 64)                              # -> (288, 35, 35)
        self.Mixed_6a = B(288)                                  # -> (768, 17, 17)
        self.Mixed_6b = C(768, 128)
        self.Mixed_6c = C(768, 160)
        self.Mixed_6d = C(768, 160)
        self.Mixed_6e = C(768, 192)
        self.Mixed_7a = D(768)                                  # -> (1280, 8, 8)
        self.Mixed_7b = E(1280, max_pool=False)
        self.Mixed_7c = E(2048, max_pool=True)                  # -> (2048, 8, 8)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x, size=299):
        """FID and IS resize every image to 299 x 299 (bilinear); the convolutions run on
        any size >= 75."""
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        # the graph's input, in [-1, 1]
        x = x * 2 - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, 2)))
        x = F.max_pool2d(x, 3, 2)                               # (B, 192, 35, 35)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        # (B, 2048): pool_3, FID's features
        features = x.mean((2, 3))
        # (B, 1008) logits, IS's p(y | x)
        return features, features @ self.fc.weight.T

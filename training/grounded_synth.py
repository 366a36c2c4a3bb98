"""Invented entity values for grounded training data: names, places and things no list holds.

With some forty values per slot, a small model can learn "your dog is called <one of the
forty>" without ever looking at the memory block. Values made up on the spot (a new
one for almost every example) cannot be memorised, so the only way to the right reply
is to copy it from the prompt: the skill the held-out evaluation measures. English
values are built from syllables, Chinese ones from common characters; a value that
happens to equal a held-out list value is drawn again, so the split stays clean.
"""

from __future__ import annotations

import random
from collections.abc import Collection

ONSETS = ("b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p", "pr",
          "r", "s", "sh", "st", "t", "tr", "v", "w", "z")
VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "io", "ou")
CODAS = ("", "", "", "n", "r", "l", "s", "m", "th", "x", "nd", "rk")
PLACE_ENDINGS = ("", "", "ton", "ville", "burg", "port", "field", "ford", " Bay", " Springs")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红玲兰凤梅琳建文辉宇浩轩然怡欣悦晨阳雪婷雨佳琪博思源子晗嘉毅昊天宁安康诗涵睿泽一鸣"
PLACE_CHARS = "江河山海湖林川阳州城宁安平新东西南北兴华德昌丰远泉云青龙凤台清溪石桥原岭"
THING_CHARS = "花果糖米豆茶酥糕饼面粉汤菜香甜脆红绿金银玉云星月风雪"
EN_KIND_WORDS = {"food": ("stew", "pie", "noodles", "cake", "soup"), "hobby": ("ball", "craft", "dance", "boarding"),
                 "allergy": ("seeds", "pollen", "berries", "nuts"), "job": ("maker", "keeper", "smith", "technician")}


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(syllables))


def _english(slot: str, rng: random.Random) -> str:
    if slot in ("name", "pet"):
        return _word(rng, rng.choice((2, 2, 3))).capitalize()
    if slot == "city":
        place = _word(rng, rng.choice((1, 2))) + rng.choice(PLACE_ENDINGS)
        return place[:1].upper() + place[1:]
    return f"{_word(rng, 2)} {rng.choice(EN_KIND_WORDS[slot])}"  # "zorbal stew", "grenik maker"


def _chinese(slot: str, rng: random.Random) -> str:
    if slot == "name":
        return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
    if slot == "pet":
        char = rng.choice(GIVEN + THING_CHARS)
        return char * 2 if rng.random() < 0.6 else "小" + char
    if slot == "city":
        return "".join(rng.choice(PLACE_CHARS) for _ in range(2))
    endings = {"food": "饭面饼汤糕", "hobby": "球舞画棋", "allergy": "粉籽果", "job": "师员工"}
    return "".join(rng.choice(THING_CHARS) for _ in range(2)) + rng.choice(endings[slot])


def invented_value(lang: str, slot: str, rng: random.Random, avoid: Collection[str] = ()) -> str:
    """A made-up value for ``slot`` in ``lang`` that is none of ``avoid`` (the held-out values)."""
    make = _chinese if lang == "zh" else _english
    while True:
        value = make(slot, rng)
        if value not in avoid:
            return value

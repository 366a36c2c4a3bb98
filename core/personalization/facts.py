"""Facts a user states about themselves, found by rules (English and Chinese).

Rules, not a model, so what gets remembered is predictable and explainable:

* only statements: a sentence ending in "?" (or "？", "吗", "呢") or opening with a
  question word is skipped ("is my name Bob?");
* only the speaker: a rule matches from the start of a clause whose subject is
  "I"/"my"/"我", so "my friend lives in Rome" or "she said I live in Rome" is not the
  user's fact;
* short objects only: a name is at most 4 words, a place 6, a liking 8, so a long
  clause (or an instruction smuggled into one) is not stored;
* each fact gets a ``subject``; a newer fact with the same subject supersedes the
  older ("I moved to Paris" after "I live in Berlin": both are ``home``). Likes and
  allergies carry their object in the subject (``likes:jazz``), so "I like jazz" and
  "I like tea" coexist and "I don't like jazz anymore" replaces the first;
* a negation retracts ("I don't live in Paris anymore", "我不住在北京了", "my name isn't
  Bob"): a :class:`Fact` with ``retracts`` set deletes the live memory of that subject
  when it names the object (or any, for "there"/"那里");
* nothing is learned from a message that holds special-token strings, role markers or
  instructions aimed at the model ("ignore previous…", "you must…", "忽略之前的…"):
  such text is an attack on the prompt, not a fact about the user.

The stored text is a short canonical sentence built from the match ("I live in
Paris."), in the user's language, never the raw message.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

MAX_FACTS_PER_MESSAGE = 5
MAX_OBJECT_CHARS = 80


@dataclass(frozen=True, slots=True)
class Fact:
    subject: str  # "name", "home", "likes:jazz", ...
    text: str  # canonical first-person sentence ("" for a retraction)
    retracts: str | None = None  # a negation: the object no longer true ("" = whatever is stored)

    def withdraws(self, memory_text: str) -> bool:
        """Whether this retraction takes back a stored fact with ``memory_text``."""
        if self.retracts is None:
            return False
        return not self.retracts or self.retracts.casefold() in memory_text.casefold()


# -- text aimed at the model -----------------------------------------------------------

_AIMED_AT_MODEL = re.compile(
    r"<\|[^|<>]{1,40}\|>|</?s>|\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>|\b(?:im_start|im_end|endoftext|eot_id)\b"
    r"|\{\{|\{%|\[(?:system|assistant|user)\]|^\s*#{0,6}\s*(?:system|assistant|user|human|model|developer)\s*:"
    r"|^\s*#{1,6}\s*(?:system|instruction|instructions|response)\b"
    r"|\b(?:ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,40}\b(?:instructions?|rules?|prompts?|guidelines|above|previous|prior|earlier)\b"
    r"|\byou (?:must|have to|need to|shall|will now|are now|should now|can now)\b|\bfrom now on\b|\bact as\b"
    r"|\bpretend (?:to be|you)\b|\bsystem (?:prompt|override|message|instructions?)\b|\bnew instructions?\b|\bjailbreak"
    r"|\bdeveloper mode\b|\bignoriere\b|\bигнорируй"
    r"|忽略|无视|作废|你必须|你现在是|从现在开始|从现在起|系统提示|提示词|扮演|指令",
    re.IGNORECASE | re.MULTILINE,
)


def aimed_at_model(text: str) -> bool:
    """Whether ``text`` holds special tokens, role markers or instructions to the model.
    Compared after NFKC (full-width brackets) with invisible format characters removed."""
    plain = "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) != "Cf")
    return _AIMED_AT_MODEL.search(plain) is not None


# -- splitting -----------------------------------------------------------------------

_SENTENCE = re.compile(r"[^.!?。！？\n;；…]+[.!?。！？;；…]*")
# Clause breaks: a comma or "and"/"but" before a new "I"/"my"/"我" (so "Paris, France"
# stays whole), and Chinese conjunctions. Text is NFKC-normalised first ("，" -> ",").
_CLAUSE = re.compile(
    r"\s*(?:,\s*(?:and|but|so|also)?\s*(?=(?:i|my|i'm|i've|i'd)\b|我)|\s+(?:and|but|so)\s+(?=(?:i|my|i'm|i've)\b)"
    r"|并且|而且|但是|不过)\s*",
    re.IGNORECASE,
)
_FILLER = re.compile(
    r"^(?:(?:well|oh|ok|okay|so|also|and|but|actually|btw|by the way|fyi|just so you know|anyway|yes|yeah|hi|hey|hello|"
    r"by the by|now|guess what|fun fact)\b[\s,:!-]*)+",
    re.IGNORECASE,
)
_ZH_FILLER = re.compile(r"^(?:嗯|哦|噢|对了|其实|另外|还有|顺便说一下|顺便|告诉你|跟你说|你好|好吧|好的)[，,:：\s]*")
_QUESTION_START = re.compile(
    r"^(?:is|am|are|was|were|do|does|did|can|could|would|will|should|shall|have|has|what|where|when|who|whom|whose|"
    r"why|how|which|isn't|aren't|don't|doesn't)\b",
    re.IGNORECASE,
)
_ZH_QUESTION = re.compile(r"(?:吗|呢|么|什么|哪|谁|怎么|几岁|多少|是不是|有没有)[。.!！]*$|什么|哪里|哪儿|是谁")


def _clauses(text: str) -> list[str]:
    """Statement clauses of ``text``; the clauses of questions are dropped."""
    out = []
    for match in _SENTENCE.finditer(unicodedata.normalize("NFKC", text)):
        sentence = match.group().strip()
        if not sentence or "?" in sentence:  # NFKC maps "？" to "?"
            continue
        body = sentence.rstrip(".!。！;；… ")
        for clause in _CLAUSE.split(body):
            clause = _ZH_FILLER.sub("", _FILLER.sub("", clause.strip())).strip()
            if not clause or _QUESTION_START.match(clause) or _ZH_QUESTION.search(clause):
                continue
            out.append(clause)
    return out


# -- objects -------------------------------------------------------------------------

_TRAILING = re.compile(
    r"(?:\s+(?:now|too|as well|currently|these days|nowadays|anymore|any more|lol|haha|btw|though|right now|"
    r"at the moment|since then|last (?:year|month|week)|this (?:year|month|week)|a lot|so much|very much))+$",
    re.IGNORECASE,
)
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
_PRONOUNS = {"you", "it", "that", "this", "them", "him", "her", "those", "these", "so", "to", "being", "when", "what", "how"}
_ZH_TRAILING = re.compile(r"(?:了|啦|呀|哦|喔|的|呢|啊|吧|嘛)+$")


def _clean_object(raw: str, max_words: int) -> str | None:
    obj = _TRAILING.sub("", raw.strip(" \t\"'“”‘’«»()[]{}<>*_`~,:-")).strip(" \t\"'“”‘’,:-")
    if not obj or len(obj) > MAX_OBJECT_CHARS:
        return None
    words = obj.split()
    if len(words) > max_words or words[0].casefold() in _PRONOUNS | {"not", "no", "never"}:
        return None
    if not any(ch.isalnum() for ch in obj):
        return None
    return obj


def _clean_zh(raw: str, max_chars: int = 20) -> str | None:
    obj = _ZH_TRAILING.sub("", raw.strip(" ，,。:：\"'“”")).strip()
    if not obj or len(obj) > max_chars or obj.startswith(("不", "没")) or not any(ch.isalnum() for ch in obj):
        return None
    return obj


def _is_name(obj: str) -> bool:
    return all(ch.isalpha() or ch in " '-.·" or unicodedata.category(ch) == "Mn" for ch in obj)


def _get(m: re.Match[str], name: str) -> str:
    """Group ``name``, or ``name2`` in patterns with two alternatives."""
    groups = m.groupdict()
    return groups.get(name) or groups.get(f"{name}2") or ""


def _topic(obj: str) -> str:
    """The object as a subject key: case-folded, no article, single spaces."""
    return " ".join(_ARTICLE.sub("", obj).casefold().split())[:60]


# -- rules ---------------------------------------------------------------------------

Builder = Callable[[re.Match[str]], Fact | None]


@dataclass(frozen=True, slots=True)
class Rule:
    pattern: re.Pattern[str]
    build: Builder


def _en(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"^(?:{pattern})$", re.IGNORECASE)


def _name(m: re.Match[str]) -> Fact | None:
    obj = _clean_object(_get(m, "obj"), 4)
    if obj is None or not _is_name(obj):
        return None
    obj = " ".join(word[:1].upper() + word[1:] for word in obj.split())
    return Fact("name", f"My name is {obj}.")


def _simple(subject: str, template: str, max_words: int) -> Builder:
    def build(m: re.Match[str]) -> Fact | None:
        obj = _clean_object(_get(m, "obj"), max_words)
        return None if obj is None else Fact(subject, template.format(obj=obj))

    return build


def _keyed(prefix: str, template: str, max_words: int) -> Builder:
    def build(m: re.Match[str]) -> Fact | None:
        obj = _clean_object(_get(m, "obj"), max_words)
        return None if obj is None else Fact(f"{prefix}:{_topic(obj)}", template.format(obj=obj))

    return build


def _favorite(m: re.Match[str]) -> Fact | None:
    what, obj = _clean_object(_get(m, "what"), 3), _clean_object(_get(m, "obj"), 6)
    if what is None or obj is None:
        return None
    return Fact(f"favorite:{_topic(what)}", f"My favorite {what.lower()} is {obj}.")


def _relative(m: re.Match[str]) -> Fact | None:
    rel = m["rel"].lower()
    obj = _clean_object(_get(m, "obj"), 6)
    if obj is None:
        return None
    verb = "are" if rel.endswith(("ren", "s")) and rel not in {"boss"} else "is"
    return Fact(f"family:{rel}", f"My {rel} {verb} {obj}.")


def _has_relative(m: re.Match[str]) -> Fact | None:
    rel, obj = m["rel"].lower(), _clean_object(_get(m, "obj"), 3)
    if obj is None or not _is_name(obj):
        return None
    return Fact(f"family:{rel}", f"I have a {rel} named {obj}.")


def _work(m: re.Match[str]) -> Fact | None:
    obj = _clean_object(_get(m, "obj"), 6)
    prep = _get(m, "prep").lower() or "as"
    return None if obj is None else Fact("work", f"I work {prep} {obj}.")


_ANYWHERE = {"there", "here", "that place", "that city", "it", "that", "this", "anymore", "any more"}


def _retract(subject: str, max_words: int = 6) -> Builder:
    """A negation: takes back the stored fact of ``subject`` naming the object."""

    def build(m: re.Match[str]) -> Fact | None:
        found = next((value for key, value in m.groupdict().items() if key.startswith("obj") and value), "")
        raw = _TRAILING.sub("", found.strip(" .!\"'")).strip()
        if not raw or raw.casefold() in _ANYWHERE:
            return Fact(subject, "", retracts="")
        obj = _clean_object(raw, max_words)
        return None if obj is None else Fact(subject, "", retracts=obj)

    return build


def _retract_keyed(prefix: str) -> Builder:
    def build(m: re.Match[str]) -> Fact | None:
        obj = _clean_object(_get(m, "obj"), 5)
        return None if obj is None else Fact(f"{prefix}:{_topic(obj)}", "", retracts="")

    return build


def _retract_relative(m: re.Match[str]) -> Fact | None:
    return Fact(f"family:{_get(m, 'rel').lower()}", "", retracts="")


def _age(m: re.Match[str]) -> Fact | None:
    age = int(_get(m, "obj"))
    return Fact("age", f"I am {age} years old.") if 0 < age < 130 else None


_RELATIVES = (
    r"daughter|son|wife|husband|partner|boyfriend|girlfriend|fiance|fiancee|mother|mom|mum|father|dad|"
    r"brother|sister|baby|kid|kids|children|child|grandmother|grandfather|grandma|grandpa|dog|cat|pet|puppy|kitten"
)
_LIKE = r"(?:really |also |absolutely |just |totally )?(?:like|love|enjoy|adore)"
_NOT_LIKE = r"(?:(?:really )?(?:don't|do not|dont|no longer|never) (?:really )?(?:like|love|enjoy)|hate|dislike|can't stand|cannot stand)"

_NO_MORE = r"(?:don't|do not|dont|no longer|don't really|do not really) "
_RULES_EN: tuple[Rule, ...] = (
    # negations first: the first matching rule decides
    Rule(_en(r"my name (?:is not|isn't|is no longer|'s not) (?P<obj>.+)|i(?: am|'m) not called (?P<obj2>.+)"), _retract("name", 4)),
    Rule(_en(rf"i {_NO_MORE}(?:live|reside) in (?P<obj>.+)|i(?: am|'m) (?:not|no longer) living in (?P<obj2>.+)"
             r"|i (?:don't|do not|no longer) live (?P<obj3>there|here)(?: any ?more)?"
             r"|i(?:'ve| have)? (?:moved away from|moved out of|left) (?P<obj4>.+)"), _retract("home")),
    Rule(_en(rf"i {_NO_MORE}work (?:as|at|for|in) (?P<obj>.+)|i(?:'ve| have)? (?:quit|left|lost) my job(?: (?:as|at|for|in) (?P<obj2>.+))?"
             r"|i(?: am|'m) (?:unemployed|retired|not working)(?P<obj3>)"), _retract("work")),
    Rule(_en(rf"i {_NO_MORE}study (?P<obj>.+)|i(?: am|'m) (?:not|no longer) (?:studying|majoring in) (?P<obj2>.+)"
             r"|i(?:'ve| have)? graduated(?: from (?P<obj3>.+))?"), _retract("study")),
    Rule(_en(r"i(?: am|'m) (?:not|no longer) (?:a |an )?(?P<obj>vegetarian|vegan|pescatarian|diabetic|lactose intolerant|"
             r"gluten intolerant|celiac)(?: any ?more)?"), _retract_keyed("diet")),
    Rule(_en(rf"i {_NO_MORE}have an? (?P<rel>{_RELATIVES})(?: any ?more)?|my (?P<rel2>{_RELATIVES}) (?:died|passed away|ran away)"),
         _retract_relative),
    Rule(_en(r"(?:my name is|my name's|i am called|i'm called|call me|you can call me|people call me|i go by)\s+(?P<obj>.+)"), _name),
    Rule(_en(r"i(?: now| currently| still)? (?:live|am living|'m living|reside) in (?P<obj>.+)"), _simple("home", "I live in {obj}.", 6)),
    Rule(_en(r"i(?:'ve| have)?(?: just| recently| finally)? (?:moved|relocated)(?: from .+?)? to (?P<obj>.+)"),
         _simple("home", "I live in {obj}.", 6)),
    Rule(_en(r"my home(?:town)? is (?:in )?(?P<obj>.+)"), _simple("home", "I live in {obj}.", 6)),
    Rule(_en(r"i(?: am|'m) (?:originally )?from (?P<obj>.+)|i come from (?P<obj2>.+)"), _simple("origin", "I am from {obj}.", 6)),
    Rule(_en(r"i(?: am|'m) (?:not|no longer) allergic to (?P<obj>.+)"), _keyed("allergy", "I am not allergic to {obj}.", 5)),
    Rule(_en(r"i(?: am|'m) (?:severely |very |really |also |a bit |mildly )?allergic to (?P<obj>.+)"), _keyed("allergy", "I am allergic to {obj}.", 5)),
    Rule(_en(r"i have an? (?P<obj>[\w -]{1,30}?) allergy"), _keyed("allergy", "I am allergic to {obj}.", 3)),
    Rule(_en(rf"i {_NOT_LIKE} (?P<obj>.+)"), _keyed("likes", "I don't like {obj}.", 8)),
    Rule(_en(rf"i {_LIKE} (?P<obj>.+)|i(?: am|'m) (?:really |a big )?(?:into|a (?:big |huge )?fan of|passionate about) (?P<obj2>.+)"),
         _keyed("likes", "I like {obj}.", 8)),
    Rule(_en(r"my (?:favou?rite|fav) (?P<what>[\w -]{1,30}?) (?:is|are) (?P<obj>.+)"), _favorite),
    Rule(_en(rf"my (?P<rel>{_RELATIVES})(?:'s name| is called| is named)? (?:is |are )?(?:called |named )?(?P<obj>.+)"), _relative),
    Rule(_en(rf"i have an? (?P<rel>{_RELATIVES}) (?:called|named) (?P<obj>.+)"), _has_relative),
    Rule(_en(r"i work (?P<prep>as|at|for|in) (?P<obj>.+)|my job is (?P<prep2>)(?P<obj2>.+)"),
         _work),
    Rule(_en(r"i(?: am|'m) (?:studying|majoring in|a student of) (?P<obj>.+)|i study (?P<obj2>.+)"), _simple("study", "I study {obj}.", 6)),
    Rule(_en(r"i(?: am|'m) (?P<obj>\d{1,3})(?: years old| yrs old| y/?o| now)?"), _age),
    Rule(_en(r"my birthday is (?:on )?(?P<obj>.+)"), _simple("birthday", "My birthday is {obj}.", 5)),
    Rule(_en(r"i speak (?P<obj>.+)"), _simple("languages", "I speak {obj}.", 8)),
    Rule(_en(r"i(?: am|'m) (?:a |an )?(?P<obj>vegetarian|vegan|pescatarian|diabetic|lactose intolerant|gluten intolerant|celiac)"),
         _keyed("diet", "I am {obj}.", 2)),
    Rule(_en(r"i (?:don't|do not|can't|cannot) eat (?P<obj>.+)"), _keyed("diet", "I don't eat {obj}.", 5)),
)


# Chinese: the clause starts with 我 (after fillers); objects are at most 20 characters.
_ZH_RELATIVES = "女儿|儿子|妻子|老婆|太太|丈夫|老公|男朋友|女朋友|妈妈|母亲|爸爸|父亲|哥哥|姐姐|弟弟|妹妹|孩子|狗|猫|宠物"


def _zh(subject: str, template: str, keyed: bool = False, max_chars: int = 20) -> Builder:
    def build(m: re.Match[str]) -> Fact | None:
        obj = _clean_zh(_get(m, "obj"), max_chars)
        if obj is None:
            return None
        return Fact(f"{subject}:{_topic(obj)}" if keyed else subject, template.format(obj=obj))

    return build


def _zh_relative(m: re.Match[str]) -> Fact | None:
    obj = _clean_zh(_get(m, "obj"))
    return None if obj is None else Fact(f"family:{m['rel']}", f"我的{m['rel']}叫{obj}")


def _zh_age(m: re.Match[str]) -> Fact | None:
    age = int(m["obj"])
    return Fact("age", f"我{age}岁") if 0 < age < 130 else None


def _zh_retract(subject: str) -> Builder:
    def build(m: re.Match[str]) -> Fact | None:
        raw = _get(m, "obj")
        if not raw or _ZH_TRAILING.sub("", raw) in ("那里", "那儿", "这里", "这儿", "那", "这"):
            return Fact(subject, "", retracts="")
        obj = _clean_zh(raw)
        return None if obj is None else Fact(subject, "", retracts=obj)

    return build


_RULES_ZH: tuple[Rule, ...] = (
    # negations first: the first matching rule decides
    Rule(re.compile(r"^我(?:已经|现在)?(?:不再|不|没有?)(?:再)?(?:住在|生活在|住)(?P<obj>.+?)(?:了|啦)?$"), _zh_retract("home")),
    Rule(re.compile(r"^我(?:已经)?(?:搬离|离开)了?(?P<obj>.+?)(?:了|啦)?$"), _zh_retract("home")),
    Rule(re.compile(r"^我(?:已经)?(?:不叫|不再叫)(?P<obj>[^，,]{1,12}?)(?:了|啦)?$|^我的名字(?:不是|不叫)(?P<obj2>[^，,]{1,12}?)(?:了|啦)?$"),
         _zh_retract("name")),
    Rule(re.compile(r"^我(?:已经)?(?:不|没有?)(?:再)?在(?P<obj>.+?)(?:工作|上班)了?$|^我(?:已经)?(?:辞职|失业|退休)了?(?P<obj2>)$"),
         _zh_retract("work")),
    Rule(re.compile(r"^我(?:的名字|名字)?(?:叫|是叫|的名字是)(?P<obj>[^，,]{1,12})$"), _zh("name", "我叫{obj}", max_chars=12)),
    Rule(re.compile(r"^我的名字是(?P<obj>[^，,]{1,12})$"), _zh("name", "我叫{obj}", max_chars=12)),
    Rule(re.compile(r"^我(?:现在|目前|一直)?(?:住在|生活在)(?P<obj>.+)$"), _zh("home", "我住在{obj}")),
    Rule(re.compile(r"^我(?:刚|已经|最近)?(?:搬到|搬去)了?(?P<obj>.+?)(?:住|生活)?$"), _zh("home", "我住在{obj}")),
    Rule(re.compile(r"^我(?:来自|是从)(?P<obj>.+?)(?:来的)?$"), _zh("origin", "我来自{obj}")),
    Rule(re.compile(r"^我对(?P<obj>.+?)不过敏$"), _zh("allergy", "我对{obj}不过敏", keyed=True)),
    Rule(re.compile(r"^我对(?P<obj>.+?)过敏$"), _zh("allergy", "我对{obj}过敏", keyed=True)),
    Rule(re.compile(r"^我(?:不喜欢|讨厌|不爱)(?P<obj>.+)$"), _zh("likes", "我不喜欢{obj}", keyed=True)),
    Rule(re.compile(r"^我(?:很|非常|特别|也|最|真的)?(?:喜欢|爱|热爱)(?P<obj>.+)$"), _zh("likes", "我喜欢{obj}", keyed=True)),
    Rule(re.compile(rf"^我的?(?P<rel>{_ZH_RELATIVES})(?:的名字)?(?:叫|是)(?P<obj>.+)$"), _zh_relative),
    Rule(re.compile(r"^我在(?P<obj>.+?)(?:工作|上班)$"), _zh("work", "我在{obj}工作")),
    Rule(re.compile(r"^我的工作是(?P<obj>.+)$"), _zh("work", "我的工作是{obj}")),
    Rule(re.compile(r"^我(?:今年)?(?P<obj>\d{1,3})岁$"), _zh_age),
    Rule(re.compile(r"^我的生日是(?P<obj>.+)$"), _zh("birthday", "我的生日是{obj}")),
    Rule(re.compile(r"^我(?:是)?(?P<obj>素食者|吃素|纯素食者)$"), _zh("diet", "我{obj}")),
)


def _match(clause: str) -> tuple[bool, Fact | None]:
    """(a rule matched, the fact it built); the first matching rule decides, even when
    it rejects the object."""
    for rule in _RULES_ZH if clause.startswith("我") else _RULES_EN:
        match = rule.pattern.match(clause)
        if match is not None:
            return True, rule.build(match)
    return False, None


def extract_facts(text: str) -> list[Fact]:
    """The facts ``text`` states about its author: retractions first, then at most one
    fact per subject (the last). None from text aimed at the model."""
    if aimed_at_model(text):
        return []
    found: dict[tuple[bool, str], Fact] = {}
    for clause in _clauses(text):
        fact = _match(clause)[1]
        if fact is not None:
            key = (fact.retracts is None, fact.subject)
            found.pop(key, None)
            found[key] = fact
        if len(found) >= MAX_FACTS_PER_MESSAGE:
            break
    return sorted(found.values(), key=lambda fact: fact.retracts is None)


_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
MIN_TOPICAL_WORDS = 4


def is_topical(text: str) -> bool:
    """Whether a message tells something about the user's interests: a liking ("I
    love jazz"), or a statement clause of at least 4 words (a CJK character counts
    half) that is not a personal fact ("I live in…", "my name is…"). Greetings,
    questions and facts about who the user is do not move the interest vector: they
    would pull everybody's interests towards the same small talk."""
    for clause in _clauses(text):
        matched, fact = _match(clause)
        if fact is not None and fact.subject.startswith("likes:"):
            return True
        cjk = len(_CJK.findall(clause))
        if not matched and len(_WORD.findall(_CJK.sub(" ", clause))) + cjk / 2 >= MIN_TOPICAL_WORDS:
            return True
    return False

"""Entities and sentence templates of the grounded training data (English and Chinese).

Each entity list is split (seeded) into training and held-out values by
:func:`training.grounded.split_entities`; evaluation users only get held-out values.
No value is contained in another value of any list (tests/training/test_grounded.py
checks it), so "the reply contains the value" is an unambiguous recall test.
"""

from __future__ import annotations

SLOTS = ("name", "city", "pet", "food", "job", "hobby", "allergy")

ENTITIES: dict[str, dict[str, list[str]]] = {
    "en": {
        "name": (
            "Sam Maya Oliver Priya Lucas Emma Noah Aisha Leo Chloe Ethan Zoe Mateo Hannah Ravi Grace Omar Lily "
            "Felix Nora Jonas Ivy Diego Clara Arjun Ruby Hugo Elena Theo Mila Kai Sofia Isaac Layla Finn Amara "
            "Owen Jade Ezra Alice Marcus Freya Tomas Yara Caleb Naomi Rohan Stella Elias Iris Samir Victor Dev "
            "Greta Jasper Mira Anton Wren"
        ).split(),
        "city": [
            "Paris", "Berlin", "Tokyo", "Toronto", "Madrid", "Lisbon", "Oslo", "Dublin", "Seattle", "Chicago",
            "Boston", "Denver", "Sydney", "Melbourne", "Auckland", "Vienna", "Prague", "Warsaw", "Rome", "Milan",
            "Athens", "Cairo", "Nairobi", "Lagos", "Mumbai", "Delhi", "Seoul", "Osaka", "Bangkok", "Hanoi",
            "Manila", "Jakarta", "Lima", "Bogota", "Santiago", "Mexico City", "Austin", "Portland", "Glasgow",
            "Edinburgh", "Zurich", "Geneva", "Brussels", "Amsterdam", "Stockholm", "Helsinki", "Copenhagen",
            "Budapest", "Montreal", "Vancouver", "Istanbul", "Dubai",
        ],
        "pet": (
            "Rex Max Bella Charlie Milo Coco Daisy Rocky Bailey Oscar Ziggy Biscuit Mochi Nala Simba Tiger Buddy "
            "Pickles Shadow Bruno Lola Teddy Maple Toby Zeus Juno Pixel Noodle Ollie Rusty Socks Dash Fudge "
            "Clover Ace Marble Sprout Pumpkin Whiskers Bandit Goose Pippin Truffle Scout Willow"
        ).split(),
        "food": [
            "sushi", "pizza", "ramen", "tacos", "lasagna", "pancakes", "curry", "dumplings", "paella", "falafel",
            "burritos", "pho", "risotto", "kimchi", "bagels", "croissants", "hummus", "dim sum", "pad thai",
            "goulash", "tiramisu", "gnocchi", "nachos", "biryani", "enchiladas", "moussaka", "pierogi",
            "couscous", "meatballs", "ravioli", "quesadillas", "fondue", "samosas", "brownies", "omelettes",
            "spring rolls", "cheesecake", "gumbo", "poutine", "bibimbap",
        ],
        "job": [
            "nurse", "teacher", "chef", "pilot", "plumber", "lawyer", "dentist", "architect", "engineer",
            "photographer", "librarian", "accountant", "firefighter", "electrician", "pharmacist", "journalist",
            "designer", "carpenter", "baker", "farmer", "mechanic", "veterinarian", "translator", "programmer",
            "cashier", "barista", "gardener", "surgeon", "musician", "scientist", "economist", "tailor",
            "florist", "butcher", "waiter", "receptionist", "lifeguard", "paramedic", "geologist", "historian",
        ],
        "hobby": [
            "hiking", "swimming", "painting", "reading", "cycling", "gardening", "knitting", "fishing", "dancing",
            "skiing", "surfing", "climbing", "running", "drawing", "singing", "camping", "skating", "rowing",
            "sailing", "juggling", "sewing", "bowling", "boxing", "kayaking", "snowboarding", "birdwatching",
            "woodworking", "writing", "journaling", "golfing", "diving", "gaming", "volunteering", "stargazing",
            "quilting", "fencing", "crocheting", "origami", "pottery", "photography",
        ],
        "allergy": [
            "peanuts", "shellfish", "pollen", "dust", "gluten", "milk", "eggs", "soy", "wheat", "sesame",
            "strawberries", "penicillin", "latex", "mold", "walnuts", "almonds", "cashews", "shrimp", "lactose",
            "mustard", "celery", "tomatoes", "garlic", "mushrooms", "chocolate", "coconut", "avocado",
            "pineapple", "oats", "bee stings",
        ],
    },
    "zh": {
        "name": (
            "李明 王芳 张伟 刘洋 陈静 杨帆 赵磊 黄丽 周杰 吴敏 徐强 孙悦 马超 朱琳 胡军 郭晶 何平 高翔 林娜 罗斌 "
            "郑爽 梁宇 谢婷 宋佳 唐亮 许诺 韩梅 冯涛 邓超 曹雪 彭博 萧然 田甜 董洁 潘峰 袁媛 蒋欣 蔡明 余晖 叶青 "
            "程浩 苏珊 吕方 丁宁 姚远 钟华 汪洋 任静"
        ).split(),
        "city": (
            "北京 上海 广州 深圳 杭州 成都 重庆 武汉 西安 南京 苏州 天津 长沙 郑州 青岛 厦门 大连 昆明 哈尔滨 沈阳 "
            "济南 合肥 福州 南宁 贵阳 兰州 太原 石家庄 南昌 海口 三亚 拉萨 乌鲁木齐 呼和浩特 宁波 无锡 珠海 桂林 洛阳 扬州"
        ).split(),
        "pet": (
            "旺财 咪咪 豆豆 花花 球球 小白 小黑 毛毛 乐乐 多多 团团 圆圆 妞妞 糖糖 果果 点点 贝贝 皮皮 笨笨 虎子 "
            "大黄 雪球 布丁 年糕 可乐 阿福 来福 小七 铃铛 闪电 栗子 元宝 福宝 安安 壮壮 奶糖 嘟嘟 胖虎 灰灰 乖乖"
        ).split(),
        "food": (
            "火锅 饺子 包子 面条 烤鸭 麻婆豆腐 小笼包 炒饭 寿司 披萨 牛肉面 红烧肉 宫保鸡丁 馄饨 煎饼 烧烤 麻辣烫 "
            "凉皮 肉夹馍 螺蛳粉 酸菜鱼 糖醋排骨 鱼香肉丝 回锅肉 臭豆腐 粽子 月饼 汤圆 油条 羊肉串 水煮鱼 拉面 米线 春卷 烧麦"
        ).split(),
        "job": (
            "医生 护士 老师 厨师 律师 工程师 程序员 会计 设计师 记者 警察 司机 飞行员 建筑师 牙医 药剂师 翻译 "
            "摄影师 消防员 电工 木匠 农民 售货员 服务员 理发师 教练 演员 歌手 画家 作家 科学家 兽医 快递员 银行职员 园丁"
        ).split(),
        "hobby": (
            "游泳 画画 爬山 跑步 唱歌 跳舞 钓鱼 下棋 看书 弹钢琴 打篮球 踢足球 骑自行车 书法 做饭 养花 旅行 露营 "
            "滑雪 打羽毛球 打乒乓球 写小说 编织 瑜伽 弹吉他 看电影 听音乐 玩游戏 做手工 烘焙 滑冰 冲浪 徒步 太极拳 集邮 拼图"
        ).split(),
        "allergy": (
            "花生 海鲜 花粉 牛奶 鸡蛋 大豆 小麦 芝麻 青霉素 芒果 草莓 尘螨 酒精 桃子 菠萝 蜂蜜 乳糖 核桃 腰果 杏仁 "
            "猕猴桃 麸质 辣椒 香菜 蘑菇"
        ).split(),
    },
}

PET_KINDS = {"en": ("dog", "cat"), "zh": ("狗", "猫")}

# What the user says (run through core.personalization.facts.extract_facts to get the
# stored memory, exactly as the personalization observer would).
STATEMENTS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "name": ("My name is {v}.", "Call me {v}.", "I am called {v}."),
        "city": ("I live in {v}.", "I moved to {v}."),
        "pet": ("I have a {kind} named {v}.", "I have a {kind} called {v}."),
        "food": ("My favorite food is {v}.", "My favourite food is {v}."),
        "job": ("I work as {a} {v}.",),
        "hobby": ("I like {v}.", "I enjoy {v}.", "I love {v}."),
        "allergy": ("I'm allergic to {v}.", "I am allergic to {v}."),
    },
    "zh": {
        "name": ("我叫{v}。", "我的名字是{v}。"),
        "city": ("我住在{v}。",),
        "pet": ("我的{kind}叫{v}。",),
        "food": ("我喜欢吃{v}。", "我最爱吃{v}。"),
        "job": ("我的工作是{v}。",),
        "hobby": ("我喜欢{v}。",),
        "allergy": ("我对{v}过敏。",),
    },
}

QUESTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "name": ("What is my name?", "What's my name?", "Do you remember my name?", "Who am I?", "Do you know my name?"),
        "city": ("Where do I live?", "Which city do I live in?", "Do you remember where I live?", "Where am I based?"),
        "pet": ("What is my {kind}'s name?", "What's my {kind} called?", "Do you remember my {kind}'s name?"),
        "food": ("What is my favorite food?", "What's my favourite food?", "Do you know what food I love most?"),
        "job": ("What do I do for work?", "What is my job?", "Do you remember what I do for a living?"),
        "hobby": ("What do I like doing?", "What's my hobby?", "Do you remember what I enjoy doing?"),
        "allergy": ("What am I allergic to?", "Do you remember my allergy?", "Which allergy do I have?"),
    },
    "zh": {
        "name": ("我叫什么名字？", "你还记得我的名字吗？", "我是谁？", "你知道我叫什么吗？"),
        "city": ("我住在哪里？", "我住在哪个城市？", "你记得我住在哪儿吗？"),
        "pet": ("我的{kind}叫什么名字？", "我的{kind}叫什么？", "你还记得我的{kind}叫什么吗？"),
        "food": ("我喜欢吃什么？", "我最爱吃什么？", "你知道我喜欢吃什么吗？"),
        "job": ("我是做什么工作的？", "我的工作是什么？", "你记得我是做什么的吗？"),
        "hobby": ("我平时喜欢做什么？", "我的爱好是什么？", "你记得我喜欢做什么吗？"),
        "allergy": ("我对什么过敏？", "你记得我对什么过敏吗？", "我有什么过敏吗？"),
    },
}

ANSWERS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "name": ("Your name is {v}.", "You're {v}!", "Of course, your name is {v}.", "You told me your name is {v}."),
        "city": ("You live in {v}.", "You told me you live in {v}.", "In {v}, if I remember right."),
        "pet": ("Your {kind} is called {v}.", "{v}! Your {kind}.", "Your {kind}'s name is {v}."),
        "food": ("Your favorite food is {v}.", "{V}! You told me it's your favorite.", "You love {v} most."),
        "job": ("You work as {a} {v}.", "You're {a} {v}.", "You told me you work as {a} {v}."),
        "hobby": ("You like {v}.", "You enjoy {v}.", "{V}, if I remember right."),
        "allergy": ("You're allergic to {v}.", "You told me you're allergic to {v}.", "{V}. Please be careful with it."),
    },
    "zh": {
        "name": ("你叫{v}。", "你的名字是{v}。", "当然记得，你叫{v}！"),
        "city": ("你住在{v}。", "你告诉过我，你住在{v}。", "你住在{v}呀。"),
        "pet": ("你的{kind}叫{v}。", "它叫{v}！", "你的{kind}名叫{v}。"),
        "food": ("你喜欢吃{v}。", "你最爱吃{v}！", "你说过你喜欢吃{v}。"),
        "job": ("你的工作是{v}。", "你是{v}。", "你说过你的工作是{v}。"),
        "hobby": ("你喜欢{v}。", "你的爱好是{v}。", "你说过你喜欢{v}。"),
        "allergy": ("你对{v}过敏。", "你说过你对{v}过敏，要小心哦。", "是{v}，记得避开它。"),
    },
}

ABSTAIN: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "name": ("You haven't told me your name yet. What should I call you?", "I don't know your name yet. What is it?"),
        "city": ("You haven't told me where you live. Where are you based?", "I don't know where you live yet."),
        "pet": ("You haven't told me about a {kind} yet. What's its name?", "I don't know your {kind}'s name yet."),
        "food": ("You haven't told me your favorite food yet. What is it?", "I don't know yet. What do you like to eat?"),
        "job": ("You haven't told me what you do for work. What is your job?", "I don't know your job yet."),
        "hobby": ("You haven't told me about your hobbies yet. What do you enjoy?", "I don't know yet. What do you like doing?"),
        "allergy": ("You haven't told me about any allergies.", "I don't know of any allergy. Do you have one?"),
    },
    "zh": {
        "name": ("你还没告诉我你的名字呢。我该怎么称呼你？", "我还不知道你的名字。你叫什么？"),
        "city": ("你还没告诉过我你住在哪里。你住在哪个城市？", "我还不知道你住在哪儿。"),
        "pet": ("你还没跟我说过你的{kind}。它叫什么名字？", "我还不知道你的{kind}叫什么。"),
        "food": ("你还没告诉我你喜欢吃什么。你最喜欢什么菜？", "我还不知道呢。你喜欢吃什么？"),
        "job": ("你还没说过你做什么工作。你是做什么的？", "我还不知道你的工作。"),
        "hobby": ("你还没告诉我你的爱好。你平时喜欢做什么？", "我还不知道呢。你有什么爱好？"),
        "allergy": ("你没有告诉过我你对什么过敏。", "我不知道你有什么过敏。你有过敏吗？"),
    },
}

# (user message, reply that brings the fact up, reply when no memory covers it)
MENTIONS: dict[str, dict[str, tuple[tuple[str, str, str], ...]]] = {
    "en": {
        "name": (("Hi!", "Hi {v}! How's your day going?", "Hi there! How's your day going?"),
                 ("Good morning!", "Good morning, {v}! Did you sleep well?", "Good morning! Did you sleep well?")),
        "city": (("What's the weather like today?", "I can't check the weather, but I hope it's nice in {v} today!",
                  "I can't check the weather, but I hope it's nice where you are!"),),
        "pet": (("I just got home.", "Welcome home! Give {v} a hug from me.", "Welcome home! How was your day?"),),
        "food": (("I'm hungry. What should I eat?", "How about some {v}? You told me it's your favorite.",
                  "How about something warm and simple? What do you feel like?"),),
        "job": (("Work was exhausting today.", "Sounds like a long day. Being {a} {v} is hard work, so rest well.",
                 "Sounds like a long day. What made it so tiring?"),),
        "hobby": (("I'm bored this weekend. Any ideas?", "How about some {v}? You said you enjoy it.",
                   "How about trying something new? What do you usually enjoy?"),),
        "allergy": (("Can you suggest a snack?", "Sure! Just avoid anything with {v}, since you're allergic. Maybe some fresh fruit?",
                     "Sure! Maybe some fresh fruit or a handful of crackers?"),),
    },
    "zh": {
        "name": (("你好！", "你好，{v}！今天过得怎么样？", "你好！今天过得怎么样？"),
                 ("早上好！", "早上好，{v}！昨晚睡得好吗？", "早上好！昨晚睡得好吗？")),
        "city": (("今天天气怎么样？", "我查不到天气，不过希望{v}今天天气不错！", "我查不到天气，不过希望你那里天气不错！"),),
        "pet": (("我刚到家。", "欢迎回家！替我向{v}问好。", "欢迎回家！今天过得怎么样？"),),
        "food": (("我饿了，吃点什么好呢？", "要不要吃{v}？你说过你很喜欢。", "吃点热乎的怎么样？你想吃什么？"),),
        "job": (("今天下班好累。", "辛苦了！当{v}真不容易，好好休息吧。", "辛苦了！今天为什么这么累？"),),
        "hobby": (("周末好无聊，有什么建议吗？", "要不要去{v}？你说过你喜欢{v}。", "试试新东西怎么样？你平时喜欢做什么？"),),
        "allergy": (("能推荐一个零食吗？", "当然！你对{v}过敏，记得避开它。吃点新鲜水果怎么样？", "当然！吃点新鲜水果怎么样？"),),
    },
}

# Small talk in Chinese (the chitchat corpus is English only).
ZH_CHITCHAT: tuple[tuple[str, str], ...] = (
    ("你好", "你好！很高兴见到你。今天过得怎么样？"),
    ("你好吗？", "我很好，谢谢！你呢？"),
    ("最近怎么样？", "挺好的！你最近忙什么呢？"),
    ("今天好累啊。", "辛苦了！早点休息吧。发生什么事了吗？"),
    ("我今天很开心！", "太好了！有什么好事吗？"),
    ("我有点难过。", "抱抱你。想跟我说说发生了什么吗？"),
    ("你叫什么名字？", "我叫Sunny，是你的聊天伙伴。"),
    ("你是机器人吗？", "是的，我是一个聊天机器人，但我很乐意陪你聊天。"),
    ("晚安！", "晚安！祝你做个好梦。"),
    ("早上好！", "早上好！今天有什么计划吗？"),
    ("谢谢你。", "不客气！随时找我聊天。"),
    ("我周末去爬山了。", "听起来很棒！山上的风景好看吗？"),
    ("我在学做饭。", "真不错！你最近做了什么菜？"),
    ("你喜欢什么颜色？", "我喜欢蓝色，像天空一样。你呢？"),
    ("今天下雨了。", "下雨天适合在家喝杯热茶。你今天出门了吗？"),
    ("我明天有考试。", "加油！你复习得怎么样了？"),
    ("推荐一本书吧。", "可以试试《小王子》，简单又温暖。你喜欢什么类型的书？"),
    ("我想出去旅行。", "好主意！你想去哪里？"),
    ("我养了一只小猫。", "好可爱！它叫什么名字？"),
    ("我工作压力好大。", "听起来很辛苦。是什么让你压力这么大？"),
    ("你会说中文吗？", "会的！我们可以用中文聊天。"),
    ("给我讲个笑话吧。", "为什么数学书总是很忧郁？因为它有太多的问题。"),
    ("我睡不着。", "试试深呼吸，放松一下。是有什么心事吗？"),
    ("我刚看完一部电影。", "是什么电影？好看吗？"),
    ("再见！", "再见！下次再聊。"),
    ("我喜欢听音乐。", "我也喜欢！你最近在听什么歌？"),
    ("今天天气真好。", "是啊！适合出去走走。你有什么打算？"),
    ("我饿了。", "那就去吃点好吃的吧！你想吃什么？"),
    ("我今天加班了。", "辛苦了！记得吃晚饭，好好休息。"),
    ("你在干什么？", "我在这里陪你聊天呀。你呢？"),
)

"""Help-article templates of the grounded training data, and questions on the bundled ones.

A synthetic article is a heading and a few sentences filled from :data:`KB_VALUES`
(split like the entity lists, so evaluation articles use unseen products and plans)
and random numbers. Each sentence comes with the questions it answers; the reply
quotes the sentence, which is what a small model can learn to do reliably.
"""

from __future__ import annotations

# Named values in articles, split into training and held-out like the entity lists.
KB_VALUES: dict[str, dict[str, list[str]]] = {
    "en": {
        "product": (
            "Aero kettle|Nova lamp|Orbit speaker|Pulse watch|Zen blender|Echo headphones|Drift scooter|Glow desk|"
            "Terra backpack|Luma camera|Swift charger|Polar fridge|Atlas tent|Breeze fan|Cobalt router|Ember heater|"
            "Fjord jacket|Halo doorbell|Iris monitor|Juno tablet|Kite drone|Lynx keyboard|Mako mouse|Nimbus pillow|"
            "Opal mirror|Quill pen|Ridge boots|Sol panel|Tide bottle|Vela chair"
        ).split("|"),
        "plan": "Basic Plus Premium Family Student Pro Starter Gold Silver Platinum Team Lite".split(),
        "page": "Settings|Account|Profile|Security|Privacy|My orders|Billing|Preferences|Help center|Dashboard".split("|"),
    },
    "zh": {
        "product": (
            "星光台灯|云朵枕头|极速充电器|清风电扇|暖阳取暖器|灵动耳机|远航背包|晨曦闹钟|山川帐篷|青松保温杯|"
            "海浪音箱|飞鸟无人机|白鹭吹风机|墨竹键盘|银河手表|初雪冰箱|流云摄像头|锦鲤鱼缸|春风空调|秋叶书架"
        ).split("|"),
        "plan": "基础版 标准版 高级版 家庭版 学生版 专业版 团队版 黄金版 白银版 尊享版".split(),
        "page": "设置 账户 个人资料 安全中心 隐私设置 我的订单 账单 偏好设置 帮助中心 控制台".split(),
    },
}

# topic -> heading, file slug, sentences: (template, questions). Placeholders: {n} {m}
# {a} {b} {c} small numbers, {product} {plan} {page}, {price}, {h1} {h2} hours.
KB_TOPICS: dict[str, list[dict]] = {
    "en": [
        {"heading": "Refunds", "slug": "refunds", "sentences": [
            ("You can ask for a refund within {n} days of delivery.",
             ("How long do I have to ask for a refund?", "Can I still get a refund?", "What is the refund window?")),
            ("Refunds go back to the original payment method within {m} business days.",
             ("When will I get my money back?", "How long does a refund take?")),
        ]},
        {"heading": "Delivery times", "slug": "shipping", "sentences": [
            ("Orders ship within {a} business days.", ("When will my order ship?", "How soon do you ship orders?")),
            ("Standard delivery takes {b} to {c} business days.",
             ("How long does delivery take?", "How long until my package arrives?")),
        ]},
        {"heading": "Support hours", "slug": "contact", "sentences": [
            ("Our support team is available from {h1}:00 to {h2}:00, Monday to Friday.",
             ("When is support open?", "What are your support hours?", "Can I call you in the evening?")),
            ("You can also write to us from the {page} page, and we answer within {m} hours.",
             ("How can I contact you?", "How fast do you answer messages?")),
        ]},
        {"heading": "Passwords", "slug": "account", "sentences": [
            ("To reset your password, open the {page} page and choose “Forgot password”.",
             ("How do I reset my password?", "I forgot my password. What should I do?")),
            ("The reset link in the email works for {n} minutes.", ("How long is the reset link valid?",)),
        ]},
        {"heading": "Warranty", "slug": "warranty", "sentences": [
            ("The {product} comes with a {a}-year warranty.",
             ("How long is the warranty on the {product}?", "Is the {product} under warranty?")),
            ("To make a warranty claim, send a photo of the problem and your order number from the {page} page.",
             ("How do I make a warranty claim?",)),
        ]},
        {"heading": "Memberships", "slug": "plans", "sentences": [
            ("The {plan} plan costs {price} dollars per month.",
             ("How much is the {plan} plan?", "What does the {plan} plan cost?")),
            ("You can cancel the {plan} plan at any time from the {page} page.",
             ("How do I cancel my {plan} plan?", "Can I cancel the {plan} plan?")),
        ]},
    ],
    "zh": [
        {"heading": "退款", "slug": "退款", "sentences": [
            ("收货后{n}天内可以申请退款。", ("多久之内可以申请退款？", "我还能退款吗？", "退款期限是多久？")),
            ("退款会在{m}个工作日内原路退回。", ("钱多久能退回来？", "退款要多长时间？")),
        ]},
        {"heading": "发货时间", "slug": "发货", "sentences": [
            ("订单在{a}个工作日内发出。", ("我的订单什么时候发货？", "你们多久发货？")),
            ("普通快递{b}到{c}个工作日送达。", ("快递要多久才能到？", "包裹多久能送到？")),
        ]},
        {"heading": "客服时间", "slug": "联系我们", "sentences": [
            ("客服工作时间是周一到周五{h1}点到{h2}点。", ("客服什么时候上班？", "你们的客服时间是几点？")),
            ("您也可以在“{page}”页面留言，我们会在{m}小时内回复。", ("怎么联系你们？", "留言多久能得到回复？")),
        ]},
        {"heading": "密码", "slug": "账户", "sentences": [
            ("如需重置密码，请打开“{page}”页面，点击“忘记密码”。", ("怎么重置密码？", "我忘记密码了，怎么办？")),
            ("邮件里的重置链接{n}分钟内有效。", ("重置链接多久有效？",)),
        ]},
        {"heading": "保修", "slug": "保修", "sentences": [
            ("{product}享受{a}年保修。", ("{product}保修多久？", "{product}有保修吗？")),
            ("申请保修时，请在“{page}”页面上传问题照片和订单号。", ("怎么申请保修？",)),
        ]},
        {"heading": "会员", "slug": "会员", "sentences": [
            ("{plan}每月{price}元。", ("{plan}多少钱？", "{plan}一个月多少钱？")),
            ("您可以随时在“{page}”页面取消{plan}。", ("怎么取消{plan}？", "{plan}可以取消吗？")),
        ]},
    ],
}

# Questions no article answers, and the replies that say so.
KB_UNKNOWN = {
    "en": (("Do you sell gift cards?", "Can I pay with cryptocurrency?", "Do you have a store in my town?",
            "Can I change the color of my order?", "Do you offer student discounts?"),
           ("I'm sorry, I couldn't find that in our help articles. I can pass you to a human agent if you like.",
            "I don't have information about that in our help articles. Would you like me to connect you with a human agent?")),
    "zh": (("你们卖礼品卡吗？", "可以用比特币付款吗？", "我们城市有门店吗？", "可以改订单的颜色吗？", "有学生优惠吗？"),
           ("抱歉，帮助文章里没有找到相关信息。需要我帮您转接人工客服吗？",
            "帮助文章里没有这方面的信息。我可以帮您联系人工客服。")),
}

ANSWER_LEADS = {
    "en": ("", "", "Here is what our help article says: ", "Good question! "),
    "zh": ("", "", "根据帮助文章：", "好的，"),
}
ANSWER_TAILS = {"en": ("", "", " Is there anything else I can help with?"), "zh": ("", "", "还有什么可以帮您的吗？")}

# Questions about the bundled support articles (bots/support_kb) and lessons
# (plugins/lessons.toml): (question, the sentence of the passage that answers it).
# Evaluation asks differently worded questions (training/grounded_eval.py).
BUNDLED_QUESTIONS = {
    "en": (
        ("How do I get a refund?", "You can ask for a refund within 30 days of delivery."),
        ("Can I return my order for my money back?", "You can ask for a refund within 30 days of delivery."),
        ("My item arrived damaged.", "If an item arrived damaged, send a photo within 7 days."),
        ("I forgot my password.", 'Open the login page, choose "Forgot password" and enter your email address.'),
        ("How long is the password reset link valid?", "The reset link is valid for 30 minutes."),
        ("How can I delete my account?", "Go to Settings → Privacy → Delete account."),
        ("How fast do you ship?", "Orders ship within 1 business day."),
        ("How long does standard delivery take?", "Standard delivery takes 3 to 5 business days, express delivery 1 to 2 business days."),
        ("Which countries do you ship to?", "We ship to the EU, the UK, the US, Canada, China and Japan."),
        ("What is a fraction?", "A fraction is a part of a whole."),
        ("How do I add fractions?", "To add fractions, first give them the same denominator."),
        ("How do I make the past tense in English?", "Most English verbs make the past tense with -ed: walk → walked."),
    ),
    "zh": (
        ("怎么申请退款？", "收货后 30 天内可以申请退款。"),
        ("退款多久到账？", "我们会在 5 个工作日内原路退回。"),
        ("订单什么时候发货？", "订单在 1 个工作日内发出。"),
        ("普通快递要几天？", "普通快递 3 到 5 个工作日送达，加急快递 1 到 2 个工作日送达。"),
        ("你好用中文怎么说？", "你好 (nǐ hǎo) means hello."),
    ),
}

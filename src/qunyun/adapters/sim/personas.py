"""Who lives in the simulated community, and what they say.

A learning community (学习型社群) has a shape that operators know by heart:
a handful of big names (大咖) who speak often, answer questions and share
material; a ring of regulars who check in and chat; a large majority of
lurkers (潜水) who rarely or never speak; and, sooner or later, someone who
joins only to post ads. :data:`PERSONAS` describes each kind and
:func:`draw_traits` gives one member their own habits, so that two regulars
are not the same person.

Every text below was written for qunyun; the numbers (5% / 20% / 75%
structure, fewer than 10% speaking in a big group) come from the operators'
articles behind ``SPEC.md``.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

# ----------------------------------------------------------------- personas


@dataclass(frozen=True, slots=True)
class Persona:
    """One kind of member, with the ranges their individual habits are drawn from."""

    kind: str
    label: dict[str, str]
    #: Share of the community (spammers are counted separately, see :func:`persona_mix`).
    share: float
    #: Spontaneous messages per day at full vigour (a range to draw from).
    talk: tuple[float, float]
    #: Probability that one of them never speaks of their own accord.
    silent: float
    #: Share that checks in nearly every day (streak keepers).
    streakers: float
    #: Daily check-in probability of the others (a range).
    casual_checkin: tuple[float, float]
    #: Probability of introducing themselves when welcomed by the bot...
    intro_welcomed: float
    #: ...and without being welcomed.
    intro_unprompted: float
    #: Daily decay of vigour: interest fades unless something rekindles it.
    decay: float
    #: Daily probability of leaving the group.
    leave: float
    #: How strongly attention (a welcome, a mention) lifts their rate of speaking.
    responsive: float
    #: Weights of what a spontaneous message is.
    kinds: dict[str, float]


PERSONAS: dict[str, Persona] = {
    "big_name": Persona(
        kind="big_name",
        label={"zh-CN": "大咖", "en": "big name"},
        share=0.03,
        talk=(8.0, 14.0),
        silent=0.0,
        streakers=0.5,
        casual_checkin=(0.3, 0.6),
        intro_welcomed=0.9,
        intro_unprompted=0.5,
        decay=0.995,
        leave=0.0,
        responsive=0.25,
        kinds={"chat": 0.25, "share": 0.12, "answer": 0.38, "reply": 0.15, "mention": 0.1},
    ),
    "regular": Persona(
        kind="regular",
        label={"zh-CN": "活跃成员", "en": "regular"},
        share=0.17,
        talk=(3.0, 7.0),
        silent=0.0,
        streakers=0.45,
        casual_checkin=(0.3, 0.7),
        intro_welcomed=0.8,
        intro_unprompted=0.25,
        decay=0.985,
        leave=0.0005,
        responsive=0.7,
        kinds={
            "chat": 0.33,
            "question": 0.16,
            "reply": 0.24,
            "answer": 0.1,
            "mention": 0.1,
            "sticker": 0.07,
        },
    ),
    "lurker": Persona(
        kind="lurker",
        label={"zh-CN": "潜水成员", "en": "lurker"},
        share=0.80,
        talk=(0.01, 0.08),
        silent=0.6,
        streakers=0.03,
        casual_checkin=(0.1, 0.4),
        intro_welcomed=0.35,
        intro_unprompted=0.06,
        decay=0.97,
        leave=0.003,
        responsive=1.5,
        kinds={"chat": 0.35, "question": 0.4, "reply": 0.2, "sticker": 0.05},
    ),
    "spammer": Persona(
        kind="spammer",
        label={"zh-CN": "广告号", "en": "spammer"},
        share=0.0,
        talk=(0.0, 0.0),
        silent=1.0,
        streakers=0.0,
        casual_checkin=(0.0, 0.0),
        intro_welcomed=0.0,
        intro_unprompted=0.0,
        decay=1.0,
        leave=0.0,
        responsive=0.0,
        kinds={},
    ),
}

#: Share of lurkers who still check in now and then (they read, they don't talk).
LURKER_CHECKERS = 0.12


@dataclass(slots=True)
class Traits:
    """One member's own habits, drawn once from their persona."""

    talk: float
    checkin: float
    #: Preferred local hour for the daily check-in (6.5 = 06:30).
    checkin_hour: float
    intro_welcomed: float
    intro_unprompted: float
    decay: float
    leave: float
    responsive: float
    #: reading, writing, english, data, ops or design
    topic: str


TOPICS = ("reading", "writing", "english", "data", "ops", "design")


def persona_mix(members: int) -> dict[str, int]:
    """How many members of each persona a community of ``members`` has."""
    if members < 1:
        raise ValueError("a community needs at least one member")
    spammers = 0 if members < 10 else min(2, max(1, round(members / 150)))
    big = max(1, round(members * PERSONAS["big_name"].share))
    regular = round(members * PERSONAS["regular"].share)
    lurker = members - spammers - big - regular
    if lurker < 0:  # a tiny community: all big names and regulars
        regular = max(0, regular + lurker)
        lurker = 0
    return {"big_name": big, "regular": regular, "lurker": lurker, "spammer": spammers}


def draw_traits(kind: str, rng: random.Random) -> Traits:
    """The habits of one new member of persona ``kind``."""
    p = PERSONAS[kind]
    talk = 0.0 if rng.random() < p.silent else rng.uniform(*p.talk)
    if kind == "lurker":
        checkin = rng.uniform(*p.casual_checkin) if rng.random() < LURKER_CHECKERS else 0.0
        if rng.random() < p.streakers:
            checkin = rng.uniform(0.9, 0.98)
    elif rng.random() < p.streakers:
        checkin = rng.uniform(0.9, 0.99)
    else:
        checkin = rng.uniform(*p.casual_checkin)
    # Early birds check in before work, the others after dinner.
    hour = rng.uniform(6.0, 9.0) if rng.random() < 0.45 else rng.uniform(19.5, 23.2)
    return Traits(
        talk=talk,
        checkin=checkin,
        checkin_hour=hour,
        intro_welcomed=p.intro_welcomed,
        intro_unprompted=p.intro_unprompted,
        decay=p.decay,
        leave=p.leave,
        responsive=p.responsive,
        topic=rng.choice(TOPICS),
    )


# ------------------------------------------------------------------ rhythm

#: Relative activity by local hour: a morning peak, lunch, and the evening.
HOURLY = (
    0.30, 0.14, 0.07, 0.04, 0.04, 0.10, 0.55, 1.50, 1.90, 1.35, 1.00, 1.10,
    1.75, 1.45, 0.90, 0.85, 0.90, 1.00, 1.10, 1.40, 2.05, 2.35, 1.75, 0.85,
)  # fmt: skip
_TOTAL = sum(HOURLY)
#: Share of a day's activity that falls in each local hour (sums to 1).
RHYTHM = tuple(h / _TOTAL for h in HOURLY)
#: Monday..Sunday.
WEEKDAY = (1.0, 1.0, 1.0, 1.0, 0.95, 0.8, 0.85)


# ------------------------------------------------------------------- names

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
_GIVEN = "雨桐子轩晨曦思远一诺若溪嘉怡浩然梓萱欣然宇航明哲佳琪文博诗涵俊杰晓燕海峰丽娜志强静怡天佑可馨锦程安然芷若书瑶亦凡清扬慕白星河听澜知夏"
_LITTLE = "鹿鱼米豆满橙桃禾溪乐安宁舟川柚糖夏冬"
_LATIN = (
    "Echo", "Leo", "Mia", "Kevin", "Ivy", "Sunny", "Jason", "Coco", "Vivian", "Tony",
    "Lily", "Max", "Nina", "Sam", "Ada", "Ben", "Iris", "Ken", "Luna", "Ryan",
)  # fmt: skip
CITIES = (
    "北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京", "西安", "苏州",
    "长沙", "厦门", "重庆", "天津", "青岛", "合肥", "昆明",
)  # fmt: skip
JOBS = (
    "新媒体运营", "产品经理", "HR", "高中老师", "会计", "程序员", "设计师", "大学生",
    "销售", "自由职业者", "研究生", "市场专员", "咨询顾问", "财务分析",
)  # fmt: skip


def member_name(rng: random.Random, taken: set[str]) -> str:
    """A plausible, unique group nickname: 王雨桐, 小鹿, Echo, 林夕-杭州-产品…"""
    for attempt in range(100):
        r = rng.random()
        if r < 0.38:
            given = rng.choice(_GIVEN) + (rng.choice(_GIVEN) if rng.random() < 0.6 else "")
            name = rng.choice(_SURNAMES) + given
        elif r < 0.55:
            name = rng.choice("小阿") + rng.choice(_LITTLE)
        elif r < 0.72:
            name = rng.choice(_LATIN)
        else:
            head = (
                rng.choice(_SURNAMES) + rng.choice(_GIVEN)
                if rng.random() < 0.6
                else rng.choice(_LATIN)
            )
            sep = rng.choice(("-", "｜", "·"))
            name = f"{head}{sep}{rng.choice(CITIES)}{sep}{rng.choice(JOBS)}"
        if attempt > 20:
            name += str(rng.randint(2, 99))
        if name not in taken:
            taken.add(name)
            return name
    raise RuntimeError("could not find an unused name")  # pragma: no cover


# ------------------------------------------------------------------- texts

BOOKS = (
    "增长黑客", "影响力", "金字塔原理", "刻意练习", "用户体验要素", "上瘾", "非暴力沟通",
    "原则", "思考，快与慢", "人人都是产品经理", "深度工作", "高效能人士的七个习惯",
)  # fmt: skip

_CHECKIN_DID = {
    "reading": (
        "读完《{book}》第{n}章，摘了{k}条笔记",
        "晨读 40 分钟，今天读的是《{book}》",
        "把《{book}》这周的读书卡片整理好了",
        "睡前读了 30 页《{book}》",
    ),
    "writing": (
        "写了 {w} 字的周复盘",
        "公众号草稿改到第二版了",
        "练笔一篇，{w} 字，主题是拖延",
        "给昨天的文章补了结尾",
    ),
    "english": (
        "背单词 {k} 个，精听一篇新闻",
        "跟读 TED 15 分钟，录音对比了一遍",
        "口语练习：用英文讲了今天的工作",
        "读了一篇英文长文，查了 {k} 个生词",
    ),
    "data": (
        "SQL 练习 {k} 题，窗口函数终于搞懂了",
        "用 Excel 做了一张留存表",
        "看完 Python 数据清洗那一节，代码跑通了",
        "复刻了一张漏斗图",
    ),
    "ops": (
        "拆解了一个社群的入群流程",
        "整理了本周的用户反馈，分了 {k} 类",
        "写了一版周末活动的策划",
        "复盘了上次线上活动的数据",
    ),
    "design": (
        "临摹了一张海报",
        "Figma 组件练习 30 分钟",
        "给读书笔记做了一个封面",
        "研究了 {k} 个 App 的空状态设计",
    ),
}
_CHECKIN_FORMS = (
    "打卡 第{day}天：{did}",
    "打卡｜Day {day} {did}",
    "#打卡 {did}",
    "打卡：{did}",
    "打卡 {did}，继续加油",
)


def checkin_text(rng: random.Random, topic: str, day: int) -> str:
    did = rng.choice(_CHECKIN_DID[topic]).format(
        book=rng.choice(BOOKS),
        n=rng.randint(1, 12),
        k=rng.randint(3, 60),
        w=rng.randint(3, 20) * 100,
    )
    return rng.choice(_CHECKIN_FORMS).format(day=day, did=did)


_CHAT = (
    "今天试着早起了一小时，脑子特别清醒",
    "最近在读《{book}》，有一段讲反馈的特别戳我",
    "周末打算把上周的笔记再过一遍",
    "大家早上好☀️ 新的一天继续冲",
    "刚下班，来群里看看今天聊了什么",
    "坚持了两周，终于感觉有点习惯了",
    "昨天偷懒了一天，今天补上",
    "发现写下来比只在脑子里想清楚多了",
    "番茄钟真的好用，推荐给还没试过的朋友",
    "《{book}》里那个观点我不太同意，作者有点理想化",
    "今天的工作被会议切得很碎，学习时间只能挤晚上了",
    "晚上好呀各位",
    "看到大家都这么努力，我也不好意思摸鱼了😂",
    "有没有一起在周末线上自习的？",
    "最近在做一个{topic}方向的小项目，进展比想象慢",
    "感觉这个群的氛围真的很好",
    "给自己定了个小目标：这个月读完两本书",
    "今天状态一般，但还是完成了计划",
)
_TOPIC_WORDS = {
    "reading": "读书",
    "writing": "写作",
    "english": "英语",
    "data": "数据分析",
    "ops": "运营",
    "design": "设计",
}


def chat_text(rng: random.Random, topic: str) -> str:
    return rng.choice(_CHAT).format(book=rng.choice(BOOKS), topic=_TOPIC_WORDS[topic])


#: Questions the community's FAQ answers (each contains one of its keywords).
FAQ_QUESTIONS = (
    "请问怎么打卡呀？刚进群还不太懂",
    "新人报到，群规在哪里看？",
    "想问一下之前分享的资料在哪儿下载",
    "积分攒多了有什么用？",
    "等级是怎么算的？",
    "这周的分享会是几点开始？",
    "如何打卡才算数？要写多少字吗？",
    "上周直播有回放吗？",
)
_QUESTIONS = (
    "有人用过 Notion 管理读书笔记吗？体验怎么样？",
    "写复盘的时候大家一般按什么结构来？",
    "新手学 SQL 从哪本书开始比较好？",
    "用户访谈一次聊多久比较合适？",
    "英语听力总是跟不上，有什么练习方法吗？",
    "做活动策划时预算一般怎么估？",
    "《{book}》值得精读吗？",
    "大家用什么工具画思维导图？",
    "数据分析岗的面试一般会考什么？",
    "公众号文章的标题有什么技巧吗？",
    "早起总坚持不下来，大家是怎么做到的？",
    "下班后很累，还怎么挤出学习时间？",
    "Excel 的数据透视表有什么好教程吗？",
    "Python 处理表格从哪里学起？",
    "雅思口语怎么准备比较高效？",
    "英语口语没有语伴，怎么练？",
    "拆书稿一般怎么写才不像读后感？",
    "社群运营新人最该先学什么？",
    "用户增长有哪些入门书推荐？",
    "Figma 新手有推荐的入门课吗？",
    "海报排版总是很乱，有什么原则吗？",
    "写作总是卡在开头，怎么办？",
)


def question_text(rng: random.Random, *, faq: bool) -> str:
    if faq:
        return rng.choice(FAQ_QUESTIONS)
    return rng.choice(_QUESTIONS).format(book=rng.choice(BOOKS))


_ADVICE = (
    "先定一个很小的目标，每天只做一点点",
    "把问题拆成三步，先做最容易的那一步",
    "找一本入门书，从头到尾跟着练一遍",
    "先看两三个做得好的案例，再动手",
    "每周固定一个时间复盘，坚持比方法重要",
    "用番茄钟，25 分钟一段，中间别看手机",
    "笔记一定要用自己的话写，别照抄原文",
    "找个搭子互相监督，效果好很多",
    "先做出来再改，别一开始就追求完美",
)
_CLOSERS = ("，供参考～", "，亲测有效。", "。有问题再交流！", "，我自己就是这么过来的。", "")


def answer_text(rng: random.Random, asker: str) -> str:
    opener = rng.choice(("我的做法是", "可以试试", "个人经验：", "建议"))
    return f"@{asker} {opener}{rng.choice(_ADVICE)}{rng.choice(_CLOSERS)}"


_SUBJECTS = (
    "用户分层",
    "社群冷启动",
    "复盘方法",
    "写作结构",
    "留存分析",
    "英语精听",
    "读书笔记",
    "时间管理",
)


def share_text(rng: random.Random) -> str:
    slug = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(10))
    url = f"https://mp.weixin.qq.com/s/{slug}"
    subject = rng.choice(_SUBJECTS)
    form = rng.choice(
        (
            "分享一篇讲{s}的文章，我觉得很实用：{url}",
            "整理了一份{s}的笔记，放在这里了 {url}",
            "这篇关于{s}的长文值得收藏 {url}",
            "周末读到的，讲{s}讲得很透：{url}",
        )
    )
    return form.format(s=subject, url=url)


_REPLIES = (
    "说得太对了",
    "同感，我也踩过这个坑",
    "学到了，感谢分享🙏",
    "这个思路好，收藏了",
    "我补充一点：执行的时候最好先小范围试试",
    "哈哈哈真实",
    "+1",
    "有道理，回头我也试试",
    "这个我有不同看法，不过挺有启发的",
    "求后续！",
)


def reply_text(rng: random.Random) -> str:
    return rng.choice(_REPLIES)


_MENTIONS = (
    "@{name} 你上次说的那本书叫什么来着？",
    "@{name} 周末一起约个线上自习？",
    "@{name} 你那份笔记方便再发一下吗？",
    "@{name} 厉害了，坚持这么久！",
    "@{name} 这个问题你应该最有经验",
)


def mention_text(rng: random.Random, name: str) -> str:
    return rng.choice(_MENTIONS).format(name=name)


_GOALS = (
    "养成每天读书的习惯",
    "把英语口语捡起来",
    "系统学一下数据分析",
    "练练写作",
    "认识更多做运营的朋友",
    "给自己找个学习的伴",
)


#: What members say they are good at, by topic: the profile playbook turns these
#: into expertise tags, and the questions above mention them (so the microphone
#: finds someone to pass a question to).
EXPERTISE: dict[str, tuple[str, ...]] = {
    "reading": ("读书笔记", "拆书", "阅读方法"),
    "writing": ("写作", "公众号", "复盘"),
    "english": ("英语口语", "英语听力", "雅思"),
    "data": ("SQL", "Excel", "Python", "数据分析"),
    "ops": ("社群运营", "活动策划", "用户增长"),
    "design": ("Figma", "海报", "思维导图"),
}
#: The English names the few members who introduce themselves in English use.
CITY_EN = {
    "北京": "Beijing", "上海": "Shanghai", "广州": "Guangzhou", "深圳": "Shenzhen",
    "杭州": "Hangzhou", "成都": "Chengdu", "武汉": "Wuhan", "南京": "Nanjing",
}  # fmt: skip
_JOB_EN = ("product manager", "teacher", "developer", "designer", "student", "analyst")
_GOAL_EN = ("read more", "speak English again", "learn data analysis", "write every week")


def expertise_of(rng: random.Random, topic: str) -> list[str]:
    """One or two things a member of ``topic`` is good at."""
    pool = EXPERTISE[topic]
    return rng.sample(pool, k=min(len(pool), 1 if rng.random() < 0.5 else 2))


def intro_text(rng: random.Random, name: str, expertise: list[str]) -> str:
    """A self-introduction. Most follow the community's card format (``城市：…``,
    ``擅长：…``, or the same in English), which the profile playbook reads; some
    forget the expertise line; a quarter are a plain sentence it cannot read."""
    city, job, goal = rng.choice(CITIES), rng.choice(JOBS), rng.choice(_GOALS)
    skills = "、".join(expertise)
    r = rng.random()
    if r < 0.12:
        return f"大家好，我是{name}，在{city}做{job}，想在这里{goal}，请多关照！"
    if r < 0.24:
        return f"新人报到！{city}的{job}一枚，最近想{goal}，希望和大家一起进步。"
    if r < 0.64:
        lines = ["自我介绍一下～", f"昵称：{name}", f"城市：{city}", f"职业：{job}"]
        if rng.random() < 0.8:
            lines.append(f"擅长：{skills}")
        lines.append(f"想收获：{goal}")
        return "\n".join(lines)
    if r < 0.82:
        head = "#自我介绍 " if rng.random() < 0.5 else ""
        tail = f"【擅长】{skills}" if rng.random() < 0.8 else ""
        return f"{head}【城市】{city}【职业】{job}\n{tail}【想学】{goal}"
    lines = ["#intro", f"City: {CITY_EN[rng.choice(tuple(CITY_EN))]}", f"Role: {rng.choice(_JOB_EN)}"]
    if rng.random() < 0.8:
        lines.append(f"Skills: {', '.join(expertise)}")
    lines.append(f"Looking for: {rng.choice(_GOAL_EN)}")
    return "\n".join(lines)


def expertise_line(rng: random.Random, expertise: list[str]) -> str:
    """The line a member posts when asked for the expertise their card lacks."""
    return rng.choice(("擅长：{s}", "补充一下，擅长：{s}", "【擅长】{s}")).format(s="、".join(expertise))


def hello_text(rng: random.Random) -> str:
    """A quiet newcomer's first word after the bot's friendly nudge."""
    return rng.choice(
        (
            "大家好，潜水两天了，来冒个泡👋",
            "hello 各位，新人报到，先围观学习",
            "大家好～最近有点忙，今天终于来打个招呼",
            "冒泡！很高兴加入，一起加油",
        )
    )


def still_here_text(rng: random.Random) -> str:
    """A warned member's answer: they are still around."""
    return rng.choice(
        (
            "我还在！最近太忙了，这周开始恢复打卡",
            "在的在的，一直在看大家的分享",
            "抱歉最近没怎么说话，我还想留下来",
            "收到提醒，我还在，今天起每天打卡",
        )
    )


def ack_text(rng: random.Random) -> str:
    """Acknowledging the group rules (the rules playbook's default keywords)."""
    return rng.choice(("我已阅读", "我已阅读，会遵守的", "我已阅读群规👌", "I agree"))


#: Heated exchanges: each line carries a word the guard counts as hostile.
_BARBS = (
    "你懂什么，闭嘴吧",
    "你有病吧，这都不知道",
    "放屁，根本不是这样",
    "白痴才会这么想",
    "你才是神经病",
    "不懂就别装，闭嘴",
    "真是脑残言论",
    "滚开，懒得跟你说",
)
_RETORTS = (
    "你这话说得也太过分了",
    "我说的是事实，你自己查查",
    "你根本没看我说的是什么",
    "行，你说的都对",
    "能不能好好说话？",
)


def argument_lines(rng: random.Random, n: int) -> list[str]:
    """``n`` lines of a quarrel, a barb every second line or so."""
    return [rng.choice(_BARBS) if i % 2 == 0 or rng.random() < 0.4 else rng.choice(_RETORTS) for i in range(n)]


def greet_text(rng: random.Random, name: str) -> str:
    return rng.choice(
        ("欢迎@{name}！", "欢迎新朋友 @{name}～", "@{name} 欢迎欢迎，一起打卡呀")
    ).format(name=name)


def thanks_text(rng: random.Random) -> str:
    return rng.choice(
        ("谢谢！", "收到，感谢～", "明白了，谢谢🙏", "好的好的，学到了", "感谢解答！")
    )


def level_thanks_text(rng: random.Random) -> str:
    return rng.choice(
        ("谢谢大家，继续努力💪", "升级啦，开心！", "哈哈被点名了，谢谢群主", "冲冲冲")
    )


def sticker_text(rng: random.Random) -> str:
    return rng.choice(("[强]", "[玫瑰]", "[偷笑]", "[加油]", "[抱拳]"))


# ----------------------------------------------------------------- spammers

SPAM_DOMAINS = ("kk-youhui.cn", "free-course.top", "hb-lingqu.xyz")


def _wechat_id(rng: random.Random) -> str:
    return rng.choice(("vx", "wx", "V")) + "".join(
        rng.choice(string.ascii_lowercase + string.digits) for _ in range(8)
    )


def spam_text(rng: random.Random, kind: str) -> tuple[str, str, dict[str, object]]:
    """(text, content_type, extra fields) of one spam message of ``kind``.

    Kinds: ``contact`` (add me on WeChat), ``link`` (a promo link outside the
    allow-list), ``qr`` (a QR-code image), ``flood`` (the text that is then
    repeated several times).
    """
    if kind == "contact":
        text = rng.choice(
            (
                "【福利】加V：{wx} 免费领全套运营课程",
                "兼职日结，手机就能做，有意私聊 {wx}",
                "招代理，零成本，详情加微信 {wx}",
            )
        ).format(wx=_wechat_id(rng))
        return text, "text", {}
    if kind == "link":
        slug = "".join(rng.choice(string.ascii_lowercase) for _ in range(6))
        domain = rng.choice(SPAM_DOMAINS)
        text = rng.choice(
            ("限时免费领课 👉 http://{d}/{s}", "点开领红包：https://{d}/hb/{s}")
        ).format(d=domain, s=slug)
        return text, "link", {}
    if kind == "qr":
        return rng.choice(("扫码领福利", "扫码进内部群", "")), "image", {"qr": True}
    return rng.choice(("好课低价转让，先到先得！！！", "最后 3 个名额，速来！！！")), "text", {}


# ------------------------------------------------------------ contribution

_RISE = (
    "{kw} {h}:{m:02d} 起床，先喝杯水，晨读 20 分钟",
    "{kw} 今天 {h}:{m:02d} 醒的，跑了 3 公里",
    "{kw} {h}:{m:02d}，窗外还黑着，开始背单词",
    "{kw} 早安！{h}:{m:02d} 起，把昨天的复盘补完了",
    "打卡 {kw} {h}:{m:02d} 起床，今天的计划写好了",
)


def rise_text(rng: random.Random, keyword: str) -> str:
    """An early riser's check-in for the deposit challenge (it carries the keyword)."""
    return rng.choice(_RISE).format(kw=keyword, h=rng.randint(5, 6), m=rng.randint(0, 59))


_TALK = (
    "大家晚上好，今天和大家聊聊「{topic}」，先说说我踩过的坑。",
    "第一步：先找到 20 个真正需要你的种子用户，一个个聊，不要急着拉群。",
    "第二步：定一个很小但每天都能做到的动作，比如每天打卡一句话，让大家有事可做。",
    "第三步：把群里最好的回答整理出来，做成精华，新人一来就能看到价值。",
    "第四、五步：找几位愿意值班的伙伴轮流维护，再用小小的奖励让贡献被看见。",
    "我就讲到这里，刚才大家提的问题我会在群里一条条回复，谢谢主持人和各位！",
)


def talk_text(rng: random.Random, part: int, topic: str) -> str:
    """One part of the sharing session's talk (six parts, in order)."""
    return _TALK[min(part, len(_TALK) - 1)].format(topic=topic)

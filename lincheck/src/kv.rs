//! Models of named objects, one partition per name: a network, a service or a label is
//! absent or has a value.
//!
//! | operation | absent | present |
//! | --- | --- | --- |
//! | create v | Ok, becomes v | AlreadyExists |
//! | update v | NotFound | Ok, becomes v |
//! | put v | Ok, becomes v | Ok, becomes v |
//! | delete | NotFound | Ok, becomes absent |
//! | read | Value(None) | Value(Some(current)) |

/// What a client does to the object named `key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Object {
    /// The object's name (the partition).
    pub key: String,
    /// What it does.
    pub op: Op,
}

/// An operation on one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Create it with a value; refused if it exists.
    Create(String),
    /// Change its value; refused if it does not exist.
    Update(String),
    /// Set its value whether or not it exists (a label on a node that always exists).
    Put(String),
    /// Remove it; refused if it does not exist.
    Delete,
    /// Read its value.
    Read,
}

impl Object {
    /// `create key v`.
    pub fn create(key: &str, v: &str) -> Object {
        Object::new(key, Op::Create(v.to_string()))
    }
    /// `update key v`.
    pub fn update(key: &str, v: &str) -> Object {
        Object::new(key, Op::Update(v.to_string()))
    }
    /// `put key v`.
    pub fn put(key: &str, v: &str) -> Object {
        Object::new(key, Op::Put(v.to_string()))
    }
    /// `delete key`.
    pub fn delete(key: &str) -> Object {
        Object::new(key, Op::Delete)
    }
    /// `read key`.
    pub fn read(key: &str) -> Object {
        Object::new(key, Op::Read)
    }
    fn new(key: &str, op: Op) -> Object {
        Object {
            key: key.to_string(),
            op,
        }
    }
}

/// What the store answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reply {
    /// The change was made.
    Ok,
    /// `create` of an object that exists.
    AlreadyExists,
    /// `update` or `delete` of an object that does not exist.
    NotFound,
    /// What a read saw.
    Value(Option<String>),
}

/// The model of [`Object`] operations.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObjectModel;

impl crate::Model for ObjectModel {
    type State = Option<String>;
    type Input = Object;
    type Output = Reply;
    type Key = String;

    fn init(&self) -> Option<String> {
        None
    }

    fn key(&self, input: &Object) -> String {
        input.key.clone()
    }

    fn step(
        &self,
        state: &Option<String>,
        input: &Object,
        output: Option<&Reply>,
    ) -> Option<Option<String>> {
        // What the operation does from `state`, and what it answers.
        let (next, reply) = match (&input.op, state) {
            (Op::Create(v), None) => (Some(v.clone()), Reply::Ok),
            (Op::Create(_), Some(_)) => (state.clone(), Reply::AlreadyExists),
            (Op::Update(_), None) => (None, Reply::NotFound),
            (Op::Update(v), Some(_)) => (Some(v.clone()), Reply::Ok),
            (Op::Put(v), _) => (Some(v.clone()), Reply::Ok),
            (Op::Delete, None) => (None, Reply::NotFound),
            (Op::Delete, Some(_)) => (None, Reply::Ok),
            (Op::Read, _) => (state.clone(), Reply::Value(state.clone())),
        };
        match output {
            None => Some(next),
            Some(out) if *out == reply => Some(next),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Model;

    #[test]
    fn steps_follow_the_table() {
        let m = ObjectModel;
        let none: Option<String> = None;
        let one = Some("1".to_string());
        let c = Object::create("k", "1");
        assert_eq!(m.step(&none, &c, Some(&Reply::Ok)), Some(one.clone()));
        assert_eq!(m.step(&none, &c, Some(&Reply::AlreadyExists)), None);
        assert_eq!(
            m.step(&one, &c, Some(&Reply::AlreadyExists)),
            Some(one.clone())
        );
        let u = Object::update("k", "2");
        assert_eq!(m.step(&none, &u, Some(&Reply::NotFound)), Some(None));
        assert_eq!(m.step(&one, &u, Some(&Reply::Ok)), Some(Some("2".into())));
        assert_eq!(m.step(&one, &u, Some(&Reply::NotFound)), None);
        let d = Object::delete("k");
        assert_eq!(m.step(&one, &d, Some(&Reply::Ok)), Some(None));
        assert_eq!(m.step(&none, &d, Some(&Reply::Ok)), None);
        let r = Object::read("k");
        assert_eq!(
            m.step(&one, &r, Some(&Reply::Value(one.clone()))),
            Some(one.clone())
        );
        assert_eq!(m.step(&one, &r, Some(&Reply::Value(None))), None);
        // Unknown outcomes take whichever branch the state allows.
        assert_eq!(m.step(&none, &c, None), Some(one.clone()));
        assert_eq!(m.step(&one, &d, None), Some(None));
        assert_eq!(m.key(&r), "k");
    }
}
